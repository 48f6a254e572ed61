// Fused SwiGLU vs silu(gate) * up through autograd: separate gate/up tensors (dense MLP) and the
// concatenated [rows, 2F] layout of the grouped experts, float32 and bfloat16, odd sizes, non-contiguous.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernel_compare.h"
#include "kernels/fused_switch.h"
#include "kernels/swiglu.h"

namespace l4::kernels {
namespace {

using testing::close;
using testing::made_by;
using testing::tolerance_for;

void check_pair(const at::Tensor& gate_in, const at::Tensor& up_in) {
  const at::ScalarType dtype = gate_in.scalar_type();
  const at::Tensor grad = torch::randn(gate_in.sizes(), gate_in.options());
  const at::Tensor gate_ref = gate_in.detach().clone().requires_grad_(true);
  const at::Tensor up_ref = up_in.detach().clone().requires_grad_(true);
  const at::Tensor expected = swiglu_composite(gate_ref, up_ref);
  expected.backward(grad);
  const at::Tensor gate = gate_in.detach().requires_grad_(true), up = up_in.detach().requires_grad_(true);
  const at::Tensor actual = swiglu(gate, up);
  ASSERT_TRUE(made_by(actual, "FusedSwiglu")) << "the fused kernel did not run";
  actual.backward(grad);
  EXPECT_TRUE(close(actual.detach(), expected.detach(), tolerance_for(dtype, expected))) << "out";
  EXPECT_TRUE(close(gate.grad(), gate_ref.grad(), tolerance_for(dtype, gate_ref.grad()))) << "grad gate";
  EXPECT_TRUE(close(up.grad(), up_ref.grad(), tolerance_for(dtype, up_ref.grad()))) << "grad up";
}

TEST(FusedSwiglu, MatchesCompositeForOddSizes) {
  torch::manual_seed(0);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const int64_t width : {1, 7, 33, 257}) {
      for (const int64_t rows : {1, 3, 1000}) {
        SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " width " << width << " rows " << rows);
        const auto options = torch::TensorOptions().dtype(dtype);
        // Gate values out to +-12 reach both flat ends of SiLU.
        check_pair(torch::randn({rows, width}, options) * 4, torch::randn({rows, width}, options));
      }
    }
  }
}

TEST(FusedSwiglu, MatchesCompositeOnNonContiguousInputs) {
  torch::manual_seed(1);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto options = torch::TensorOptions().dtype(dtype);
    const at::Tensor gate = torch::randn({2, 33, 5}, options).transpose(1, 2);
    const at::Tensor up = torch::randn({2, 33, 5}, options).transpose(1, 2);
    ASSERT_FALSE(gate.is_contiguous());
    check_pair(gate, up);
  }
}

// The grouped experts' layout: gate_up [rows, 2F] (gate columns first), and a row slice of it.
void check_concat(const at::Tensor& gate_up_in) {
  const at::ScalarType dtype = gate_up_in.scalar_type();
  const int64_t rows = gate_up_in.size(0), ffn = gate_up_in.size(1) / 2;
  const at::Tensor grad_hidden = torch::randn({rows, ffn}, gate_up_in.options());
  const at::Tensor gate_up_ref = gate_up_in.detach().clone().requires_grad_(true);
  const at::Tensor expected =
      swiglu_composite(gate_up_ref.narrow(1, 0, ffn), gate_up_ref.narrow(1, ffn, ffn));
  expected.backward(grad_hidden);

  at::Tensor hidden = at::empty({rows, ffn}, gate_up_in.options());
  swiglu_concat_forward_out(gate_up_in, hidden);
  EXPECT_TRUE(close(hidden, expected.detach(), tolerance_for(dtype, expected))) << "forward";
  at::Tensor grad_gate_up = at::empty_like(gate_up_in),
             recomputed = at::empty({rows, ffn}, gate_up_in.options());
  swiglu_concat_backward_out(grad_hidden, gate_up_in, grad_gate_up, recomputed);
  EXPECT_TRUE(close(grad_gate_up, gate_up_ref.grad(), tolerance_for(dtype, gate_up_ref.grad())))
      << "backward";
  EXPECT_TRUE(close(recomputed, expected.detach(), tolerance_for(dtype, expected))) << "recomputed hidden";
}

TEST(FusedSwiglu, ConcatenatedLayoutMatchesComposite) {
  torch::manual_seed(2);
  for (const bool fused : {true, false}) {  // false: the composite fallback of the same entry points
    set_fused_enabled(fused);
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      for (const int64_t ffn : {1, 7, 33, 257}) {
        for (const int64_t rows : {1, 3, 1000}) {
          SCOPED_TRACE(::testing::Message() << (fused ? "fused " : "composite ") << c10::toString(dtype)
                                            << " ffn " << ffn << " rows " << rows);
          const at::Tensor all = torch::randn({rows + 2, 2 * ffn}, torch::TensorOptions().dtype(dtype)) * 4;
          check_concat(all.narrow(0, 1, rows));
        }
      }
    }
  }
  set_fused_enabled(true);
}

TEST(FusedSwiglu, FallsBackToCompositeWhenSwitchedOff) {
  const at::Tensor gate = torch::randn({3, 8}).requires_grad_(true), up = torch::randn({3, 8});
  set_fused_enabled(false);
  const at::Tensor off = swiglu(gate, up);
  set_fused_enabled(true);
  EXPECT_FALSE(made_by(off, "FusedSwiglu"));
  EXPECT_TRUE(made_by(swiglu(gate, up), "FusedSwiglu"));
}

}  // namespace
}  // namespace l4::kernels
