// bf16 kernels' caches stay bounded when the shapes change every step (document-masked attention).
#include <gtest/gtest.h>
#include <malloc.h>
#include <torch/torch.h>

#include <thread>

#include "core/operator_cache_limit.h"

namespace l4 {
namespace {

// As the llama4 binary does at start-up: the process-wide cache reads its capacity once, when the first
// test's matmul runs.
const bool caches_limited = (limit_onednn_operator_cache(), true);

// Heap bytes in use (every glibc arena).
double heap_in_use_mb() {
  return static_cast<double>(mallinfo2().uordblks) / (1 << 20);
}

// bf16 attention over documents of other lengths every step, as document-masked training does: the
// matmul library prepares kernels per shape and must not keep every step's (it kept 1024 per thread).
TEST(Bf16Kernels, NewShapesEveryStepDoNotGrowTheHeap) {
  constexpr int kSteps = 300;  // a new length every step, more than either cache holds
  double after_warmup = 0, after_last = 0;
  // A new thread: the kernel cache is per thread and sizes itself on first use.
  std::thread steps([&] {
    const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
    for (int step = 0; step < kSteps; ++step) {
      const int64_t length = 64 + step;
      const at::Tensor q = torch::randn({1, 8, length, 32}, bf16).requires_grad_();
      const at::Tensor k = torch::randn({1, 8, length, 32}, bf16).requires_grad_();
      const at::Tensor v = torch::randn({1, 8, length, 32}, bf16).requires_grad_();
      at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true).sum().backward();
      if (step == kSteps / 2) after_warmup = heap_in_use_mb();
    }
    after_last = heap_in_use_mb();
  });
  steps.join();
  ASSERT_TRUE(caches_limited);
  // With either cache at its default the second half of the steps adds 40-80 MiB (and the first half
  // 220-680 MiB); with both bounded the heap is flat (98.6 -> 98.4 MiB), give or take the longer lengths
  // kernels replacing shorter ones.
  EXPECT_LT(after_last - after_warmup, 12.0)
      << "in use half-way: " << after_warmup << " MiB, at the end: " << after_last << " MiB";
}

}  // namespace
}  // namespace l4
