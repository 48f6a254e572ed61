// Fused RoPE vs the composite rotation through autograd, float32 and bfloat16, odd head counts and token
// counts, tables per batch row or shared, non-contiguous x.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernel_compare.h"
#include "kernels/fused_switch.h"
#include "kernels/rope.h"

namespace l4::kernels {
namespace {

using testing::close;
using testing::made_by;
using testing::tolerance_for;

// Tables laid out as model/rope.h builds them: cos at 2j and 2j+1, -sin at 2j, +sin at 2j+1.
std::pair<at::Tensor, at::Tensor> tables(int64_t batch, int64_t tokens, int64_t dim) {
  const at::Tensor angles = torch::rand({batch, tokens, 1, dim / 2}) * 100;
  const at::Tensor c = angles.cos(), s = angles.sin();
  return {torch::stack({c, c}, -1).flatten(3), torch::stack({-s, s}, -1).flatten(3)};
}

void check(const at::Tensor& x_in, const at::Tensor& cos, const at::Tensor& sin) {
  const at::ScalarType dtype = x_in.scalar_type();
  const at::Tensor grad = torch::randn(x_in.sizes(), x_in.options());
  const at::Tensor x_ref = x_in.detach().clone().requires_grad_(true);
  const at::Tensor expected = rope_composite(x_ref, cos, sin);
  expected.backward(grad);
  const at::Tensor x = x_in.detach().requires_grad_(true);
  const at::Tensor actual = rope(x, cos, sin);
  ASSERT_TRUE(made_by(actual, "FusedRope")) << "the fused kernel did not run";
  actual.backward(grad);
  EXPECT_TRUE(close(actual.detach(), expected.detach(), tolerance_for(dtype, expected))) << "forward";
  EXPECT_TRUE(close(x.grad(), x_ref.grad(), tolerance_for(dtype, x_ref.grad()))) << "backward";
}

TEST(FusedRope, MatchesCompositeForOddSizes) {
  torch::manual_seed(0);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const int64_t dim : {2, 6, 34, 258}) {
      for (const int64_t tokens : {1, 3, 1000}) {
        for (const int64_t heads : {1, 3}) {
          SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " head_dim " << dim << " tokens "
                                            << tokens << " heads " << heads);
          const auto [cos, sin] = tables(2, tokens, dim);
          check(torch::randn({2, tokens, heads, dim}, torch::TensorOptions().dtype(dtype)), cos, sin);
        }
      }
    }
  }
}

TEST(FusedRope, SharedTablesAndNonContiguousInput) {
  torch::manual_seed(1);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto [cos, sin] = tables(1, 5, 34);  // one table row for every batch row
    const at::Tensor x = torch::randn({3, 4, 5, 34}, torch::TensorOptions().dtype(dtype)).transpose(1, 2);
    ASSERT_FALSE(x.is_contiguous());
    check(x, cos, sin);
  }
}

TEST(FusedRope, RotationPreservesPairNormsAndBackwardInvertsIt) {
  // Independent of the composite: |rope(x)| per pair equals |x|, and the backward (rotation by minus the
  // angle) applied to rope(x) gives x back.
  torch::manual_seed(2);
  const auto [cos, sin] = tables(2, 7, 8);
  const at::Tensor x = torch::randn({2, 7, 3, 8}, torch::kDouble).to(at::kFloat).requires_grad_(true);
  const at::Tensor y = rope(x, cos, sin);
  ASSERT_TRUE(made_by(y, "FusedRope"));
  auto pair_norm = [](const at::Tensor& t) { return t.view({2, 7, 3, 4, 2}).pow(2).sum(-1); };
  EXPECT_TRUE(torch::allclose(pair_norm(y.detach()), pair_norm(x.detach()), 1e-5, 1e-6));
  y.backward(y.detach());
  EXPECT_TRUE(torch::allclose(x.grad(), x.detach(), 1e-5, 1e-6));
}

TEST(FusedRope, FallsBackToCompositeWhenSwitchedOff) {
  const auto [cos, sin] = tables(1, 3, 4);
  const at::Tensor x = torch::randn({1, 3, 2, 4}).requires_grad_(true);
  set_fused_enabled(false);
  const at::Tensor off = rope(x, cos, sin);
  set_fused_enabled(true);
  EXPECT_FALSE(made_by(off, "FusedRope"));
  EXPECT_TRUE(made_by(rope(x, cos, sin), "FusedRope"));
}

}  // namespace
}  // namespace l4::kernels
