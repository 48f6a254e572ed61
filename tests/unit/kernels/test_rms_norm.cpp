// Fused RMSNorm vs the composite LibTorch expression, forward and backward (gradients from autograd through
// the composite), float32 and bfloat16, odd widths and row counts, with and without weight, non-contiguous x.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernel_compare.h"
#include "kernels/fused_switch.h"
#include "kernels/rms_norm.h"

namespace l4::kernels {
namespace {

using testing::close;
using testing::made_by;
using testing::tolerance_for;

struct Result {
  at::Tensor y, grad_x, grad_weight;
};

// Runs fn(x, weight) forward and backward against a fixed upstream gradient; x and weight are leaves.
template <typename Fn>
Result run(Fn fn, const at::Tensor& x_in, const at::Tensor& weight_in, const at::Tensor& grad_y) {
  const at::Tensor x = x_in.detach().requires_grad_(true);
  const at::Tensor weight = weight_in.defined() ? weight_in.detach().requires_grad_(true) : at::Tensor();
  const at::Tensor y = fn(x, weight);
  y.backward(grad_y);
  return {y.detach(), x.grad(), weight.defined() ? weight.grad() : at::Tensor()};
}

void check(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor grad_y = torch::randn(x.sizes(), x.options());
  const Result expected =
      run([eps](auto& a, auto& w) { return rms_norm_composite(a, w, eps); }, x, weight, grad_y);
  at::Tensor fused_y;
  const Result actual = run(
      [eps, &fused_y](auto& a, auto& w) {
        fused_y = rms_norm(a, w, eps);
        return fused_y;
      },
      x, weight, grad_y);
  ASSERT_TRUE(made_by(fused_y, "FusedRmsNorm")) << "the fused kernel did not run";
  EXPECT_TRUE(close(actual.y, expected.y, tolerance_for(x.scalar_type(), expected.y))) << "y";
  EXPECT_TRUE(close(actual.grad_x, expected.grad_x, tolerance_for(x.scalar_type(), expected.grad_x)))
      << "grad x";
  if (weight.defined() && x.scalar_type() == at::kFloat) {
    // grad_weight[d] sums g * normalised x over all rows; with signs mixed the float32 rounding of each term
    // (~6e-8 of it, in any float32 computation, the composite's included) adds up like a random walk. So the
    // absolute tolerance is 1e-6 of each column's root-sum-square of terms (a missed row or a wrong term is
    // off by a whole term, ~1).
    const at::Tensor normed = rms_norm_composite(x.to(at::kDouble), at::Tensor(), eps);
    const at::Tensor terms_rss =
        (grad_y.to(at::kDouble) * normed).reshape({-1, x.size(-1)}).pow(2).sum(0).sqrt();
    const at::Tensor excess =
        (actual.grad_weight.to(at::kDouble) - expected.grad_weight.to(at::kDouble)).abs() -
        (1e-6 * terms_rss + 1e-6 * expected.grad_weight.to(at::kDouble).abs());
    EXPECT_LE(excess.max().item<double>(), 0.0) << "grad weight";
  } else if (weight.defined()) {
    EXPECT_TRUE(
        close(actual.grad_weight, expected.grad_weight, tolerance_for(x.scalar_type(), expected.grad_weight)))
        << "grad weight";
  }
}

TEST(FusedRmsNorm, MatchesCompositeForOddSizes) {
  torch::manual_seed(0);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const int64_t hidden : {1, 7, 33, 257}) {
      for (const int64_t rows : {1, 3, 1000}) {
        for (const bool with_weight : {true, false}) {
          SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " hidden " << hidden << " rows "
                                            << rows << (with_weight ? " weight" : " no weight"));
          const auto options = torch::TensorOptions().dtype(dtype);
          const at::Tensor x = torch::randn({rows, hidden}, options) * 3;
          const at::Tensor weight = with_weight ? 1 + 0.5 * torch::randn({hidden}, options) : at::Tensor();
          check(x, weight, 1e-5);
        }
      }
    }
  }
}

TEST(FusedRmsNorm, MatchesCompositeOnNonContiguousHigherRankInput) {
  torch::manual_seed(1);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto options = torch::TensorOptions().dtype(dtype);
    // [B, T, H, D] with T and H swapped in memory, as attention's q and k can be.
    const at::Tensor x = torch::randn({2, 4, 5, 33}, options).transpose(1, 2);
    ASSERT_FALSE(x.is_contiguous());
    check(x, at::Tensor(), 1e-6);
    check(x, torch::randn({33}, options), 1e-6);
  }
}

TEST(FusedRmsNorm, FallsBackToCompositeWhenSwitchedOffOrDtypesDiffer) {
  const at::Tensor x = torch::randn({3, 8}).requires_grad_(true);
  set_fused_enabled(false);
  const at::Tensor off = rms_norm(x, at::Tensor(), 1e-5);
  set_fused_enabled(true);
  EXPECT_FALSE(made_by(off, "FusedRmsNorm"));
  EXPECT_TRUE(made_by(rms_norm(x, at::Tensor(), 1e-5), "FusedRmsNorm"));
  // bfloat16 x with a float32 weight promotes to float32 in the composite: left to it.
  const at::Tensor mixed = rms_norm(x.to(at::kBFloat16), torch::ones({8}), 1e-5);
  EXPECT_FALSE(made_by(mixed, "FusedRmsNorm"));
  EXPECT_EQ(mixed.scalar_type(), at::kFloat);
  // A device without loops (meta here; CUDA in a build without fused_cuda.cu), or operands on two devices.
  const at::Tensor on_meta = torch::randn({3, 8}, torch::device(at::kMeta)).requires_grad_(true);
  EXPECT_FALSE(fused_applies({on_meta}));
  EXPECT_FALSE(fused_applies({x, on_meta}));
  EXPECT_FALSE(made_by(rms_norm(on_meta, at::Tensor(), 1e-5), "FusedRmsNorm"));
  EXPECT_TRUE(fused_applies({x, torch::ones({8})}));
}

}  // namespace
}  // namespace l4::kernels
