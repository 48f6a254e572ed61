// The hand-written expert node against plain autograd over per-expert slices: outputs and gradients of
// rows and both weight tensors, with an expert that gets no rows, in fp32 and under bf16 autocast.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/grouped_experts.h"

namespace l4::model {
namespace {

at::Tensor autograd_reference(const at::Tensor& rows, const std::vector<int64_t>& counts,
                              const at::Tensor& gate_up, const at::Tensor& down) {
  std::vector<at::Tensor> outs;
  int64_t offset = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    const at::Tensor r = rows.narrow(0, offset, counts[e]);
    offset += counts[e];
    const auto halves = r.matmul(gate_up[e]).chunk(2, -1);
    outs.push_back((halves[1] * at::silu(halves[0])).matmul(down[e]));
  }
  return torch::cat(outs, 0);
}

struct Grads {
  at::Tensor out, rows, gate_up, down;
};

template <class F>
Grads run(F f, const at::Tensor& rows0, const std::vector<int64_t>& counts, const at::Tensor& gate_up0,
          const at::Tensor& down0, const at::Tensor& grad_out) {
  const at::Tensor rows = rows0.clone().requires_grad_(), gate_up = gate_up0.clone().requires_grad_(),
                   down = down0.clone().requires_grad_();
  const at::Tensor out = f(rows, counts, gate_up, down);
  out.backward(grad_out.to(out.scalar_type()));
  return {out.detach().to(torch::kFloat), rows.grad(), gate_up.grad(), down.grad()};
}

void expect_close(const at::Tensor& a, const at::Tensor& b, double tolerance, const char* what) {
  const double scale = b.abs().max().item<double>() + 1e-12;
  EXPECT_LE((a - b).abs().max().item<double>() / scale, tolerance) << what;
}

TEST(GroupedExperts, MatchesAutogradOverSlices) {
  torch::manual_seed(11);
  const std::vector<int64_t> counts = {5, 0, 9, 1, 7};  // expert 1 gets no rows
  const int64_t d = 12, f = 20, rows = 22;
  const at::Tensor x = torch::randn({rows, d}), gate_up = torch::randn({5, d, 2 * f}) * 0.3,
                   down = torch::randn({5, f, d}) * 0.3, grad_out = torch::randn({rows, d});
  const Grads ours = run(grouped_expert_mlp, x, counts, gate_up, down, grad_out);
  const Grads ref = run(autograd_reference, x, counts, gate_up, down, grad_out);
  expect_close(ours.out, ref.out, 1e-6, "output");
  expect_close(ours.rows, ref.rows, 1e-6, "rows gradient");
  expect_close(ours.gate_up, ref.gate_up, 1e-6, "gate_up_proj gradient");
  expect_close(ours.down, ref.down, 1e-6, "down_proj gradient");
  EXPECT_EQ(ours.gate_up[1].abs().max().item<double>(), 0.0);  // the idle expert's gradient is zero
  EXPECT_EQ(ours.down[1].abs().max().item<double>(), 0.0);

  // bf16 autocast: the same casts as autograd's matmuls, gradients back in the weights' fp32.
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  const Grads ours16 = run(grouped_expert_mlp, x, counts, gate_up, down, grad_out);
  const Grads ref16 = run(autograd_reference, x, counts, gate_up, down, grad_out);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  EXPECT_EQ(ours16.gate_up.scalar_type(), torch::kFloat);
  expect_close(ours16.out, ref16.out, 2e-2, "bf16 output");
  expect_close(ours16.rows, ref16.rows, 2e-2, "bf16 rows gradient");
  expect_close(ours16.gate_up, ref16.gate_up, 2e-2, "bf16 gate_up_proj gradient");
  expect_close(ours16.down, ref16.down, 2e-2, "bf16 down_proj gradient");
}

// Frozen experts (LoRA elsewhere, or a frozen base): only the rows need a gradient, and the node must not
// ask autograd about an input it does not have.
TEST(GroupedExperts, FrozenWeightsGiveRowGradientsOnly) {
  torch::manual_seed(12);
  const std::vector<int64_t> counts = {3, 4, 0};
  const at::Tensor gate_up = torch::randn({3, 6, 10}) * 0.3, down = torch::randn({3, 5, 6}) * 0.3;
  const at::Tensor x0 = torch::randn({7, 6}), grad_out = torch::randn({7, 6});
  const at::Tensor x = x0.clone().requires_grad_(), x_ref = x0.clone().requires_grad_();
  grouped_expert_mlp(x, counts, gate_up, down).backward(grad_out);
  autograd_reference(x_ref, counts, gate_up, down).backward(grad_out);
  expect_close(x.grad(), x_ref.grad(), 1e-6, "rows gradient with frozen experts");
  EXPECT_FALSE(gate_up.grad().defined());
}

}  // namespace
}  // namespace l4::model
