// The fused kernels on CUDA (src/kernels/fused_cuda.cu) against their composite LibTorch expressions on the
// same GPU, forward and backward, float32 (1e-6) and bfloat16 (its tolerance), odd sizes, strided SwiGLU
// operands, RoPE tables per batch or shared. Skips without a GPU; fails in a CUDA build that lacks the loops.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../unit/kernels/kernel_compare.h"
#include "gpu_test_util.h"
#include "kernels/fused_switch.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace l4::kernels {
namespace {

using testing::close;
using testing::made_by;
using testing::tolerance_for;

// Forward and backward of fn over leaves made from inputs, against a fixed upstream gradient.
template <typename Fn>
std::vector<at::Tensor> run(Fn fn, const std::vector<at::Tensor>& inputs, const at::Tensor& grad_out,
                            at::Tensor* out = nullptr) {
  std::vector<at::Tensor> leaves;
  for (const at::Tensor& t : inputs) leaves.push_back(t.defined() ? t.detach().requires_grad_(true) : t);
  const at::Tensor y = fn(leaves);
  if (out != nullptr) *out = y;
  y.backward(grad_out);
  std::vector<at::Tensor> result{y.detach()};
  for (const at::Tensor& leaf : leaves) result.push_back(leaf.defined() ? leaf.grad() : at::Tensor());
  return result;
}

void expect_all_close(const std::vector<at::Tensor>& actual, const std::vector<at::Tensor>& expected,
                      at::ScalarType dtype, size_t skip = SIZE_MAX) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (i == skip || !expected[i].defined()) continue;
    EXPECT_TRUE(close(actual[i].cpu(), expected[i].cpu(), tolerance_for(dtype, expected[i].cpu())))
        << (i == 0 ? "output" : "gradient of input " + std::to_string(i - 1));
  }
}

TEST(FusedKernelsCuda, BuiltIntoThisCudaBuild) {
  L4_SKIP_WITHOUT_CUDA();
  EXPECT_TRUE(fused_cuda_built()) << "a CUDA LibTorch build without src/kernels/fused_cuda.cu";
}

TEST(FusedKernelsCuda, RmsNormMatchesComposite) {
  L4_SKIP_WITHOUT_CUDA();
  l4::testing::use_ieee_fp32_on_gpu();
  torch::manual_seed(0);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const int64_t hidden : {1, 7, 33, 257, 5120}) {
      for (const int64_t rows : {1, 3, 1000}) {
        for (const bool with_weight : {true, false}) {
          SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " hidden " << hidden << " rows "
                                            << rows << (with_weight ? " weight" : " no weight"));
          const auto options = torch::TensorOptions().dtype(dtype).device(at::kCUDA);
          const at::Tensor x = torch::randn({rows, hidden}, options) * 3;
          const at::Tensor weight = with_weight ? 1 + 0.5 * torch::randn({hidden}, options) : at::Tensor();
          const at::Tensor grad = torch::randn({rows, hidden}, options);
          const auto expected =
              run([](auto& in) { return rms_norm_composite(in[0], in[1], 1e-5); }, {x, weight}, grad);
          at::Tensor y;
          const auto actual =
              run([](auto& in) { return rms_norm(in[0], in[1], 1e-5); }, {x, weight}, grad, &y);
          ASSERT_TRUE(made_by(y, "FusedRmsNorm")) << "the fused kernel did not run";
          // float32 weight gradients sum one rounded term per row: 1e-6 of the column's root-sum-square.
          const bool fp32_weight = with_weight && dtype == at::kFloat;
          expect_all_close(actual, expected, dtype, fp32_weight ? 2 : SIZE_MAX);
          if (fp32_weight) {
            const at::Tensor xd = x.to(at::kDouble), gd = grad.to(at::kDouble);
            const at::Tensor normed = xd * (xd.pow(2).mean(-1, true) + 1e-5).rsqrt();
            const at::Tensor rss = (gd * normed).pow(2).sum(0).sqrt();
            const at::Tensor excess = (actual[2].to(at::kDouble) - expected[2].to(at::kDouble)).abs() -
                                      (1e-6 * rss + 1e-6 * expected[2].to(at::kDouble).abs());
            EXPECT_LE(excess.max().item<double>(), 0.0) << "grad weight";
          }
        }
      }
    }
  }
}

TEST(FusedKernelsCuda, RopeMatchesComposite) {
  L4_SKIP_WITHOUT_CUDA();
  torch::manual_seed(1);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const bool per_batch : {false, true}) {
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << (per_batch ? " tables per batch" : ""));
      const int64_t batch = 3, seq = 37, heads = 5, dim = 18;
      const auto on_gpu = torch::TensorOptions().device(at::kCUDA);
      const at::Tensor x = torch::randn({batch, seq, heads, dim}, on_gpu.dtype(dtype));
      const at::Tensor angles = torch::rand({per_batch ? batch : 1, seq, 1, dim / 2}, on_gpu) * 6.3;
      const at::Tensor cos = angles.cos().repeat_interleave(2, -1);
      // The tables' sine is signed per pair (-sin on the first, +sin on the second), as model/rope.h lays
      // out.
      const at::Tensor sign = torch::tensor({-1.0f, 1.0f}, on_gpu).repeat({dim / 2});
      const at::Tensor sin = angles.sin().repeat_interleave(2, -1) * sign;
      const at::Tensor grad = torch::randn(x.sizes(), x.options());
      const auto expected = run([&](auto& in) { return rope_composite(in[0], cos, sin); }, {x}, grad);
      at::Tensor y;
      const auto actual = run([&](auto& in) { return rope(in[0], cos, sin); }, {x}, grad, &y);
      ASSERT_TRUE(made_by(y, "FusedRope")) << "the fused kernel did not run";
      expect_all_close(actual, expected, dtype);
    }
  }
}

TEST(FusedKernelsCuda, SwigluMatchesCompositeAndTheConcatenatedForm) {
  L4_SKIP_WITHOUT_CUDA();
  torch::manual_seed(2);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const int64_t width : {1, 7, 129}) {
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " width " << width);
      const auto options = torch::TensorOptions().dtype(dtype).device(at::kCUDA);
      const int64_t rows = 301;
      const at::Tensor gate = torch::randn({rows, width}, options) * 4,
                       up = torch::randn({rows, width}, options);
      const at::Tensor grad = torch::randn({rows, width}, options);
      const auto expected = run([](auto& in) { return swiglu_composite(in[0], in[1]); }, {gate, up}, grad);
      at::Tensor y;
      const auto actual = run([](auto& in) { return swiglu(in[0], in[1]); }, {gate, up}, grad, &y);
      ASSERT_TRUE(made_by(y, "FusedSwiglu")) << "the fused kernel did not run";
      expect_all_close(actual, expected, dtype);

      // The experts' form: gate and up halves of one [rows, 2F] projection (rows spaced 2F apart).
      const at::Tensor gate_up = torch::cat({gate, up}, 1);
      at::Tensor hidden = at::empty({rows, width}, options);
      swiglu_concat_forward_out(gate_up, hidden);
      EXPECT_TRUE(close(hidden.cpu(), expected[0].cpu(), tolerance_for(dtype, expected[0].cpu())))
          << "concat forward";
      at::Tensor grad_gate_up = at::empty_like(gate_up), hidden_again = at::empty({rows, width}, options);
      swiglu_concat_backward_out(grad, gate_up, grad_gate_up, hidden_again);
      const at::Tensor want = torch::cat({expected[1], expected[2]}, 1).cpu();
      EXPECT_TRUE(close(grad_gate_up.cpu(), want, tolerance_for(dtype, want))) << "concat backward";
      EXPECT_TRUE(close(hidden_again.cpu(), expected[0].cpu(), tolerance_for(dtype, expected[0].cpu())))
          << "concat backward's recomputed hidden";
    }
  }
}

}  // namespace
}  // namespace l4::kernels
