// Shared checks of the fused-kernel tests: tolerances per dtype and an elementwise comparison that names
// the worst element, plus a check that the fused node (not the composite fallback) produced a tensor.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace l4::kernels::testing {

struct Tolerance {
  double atol;
  double rtol;
};

// float32: 1e-6 absolute and relative. bfloat16: about two units in the last place (rtol 1.6e-2, as
// torch.testing uses) and 1% of the largest reference magnitude (gradients that are sums of cancelling
// terms have absolute errors on that scale).
inline Tolerance tolerance_for(at::ScalarType dtype, const at::Tensor& expected) {
  if (dtype == at::kFloat) return {1e-6, 1e-6};
  const double scale = expected.numel() ? expected.abs().max().item<double>() : 0.0;
  return {1e-2 * std::max(scale, 1e-3), 1.6e-2};
}

// |actual - expected| <= atol + rtol * |expected| everywhere; same shape and dtype.
inline ::testing::AssertionResult close(const at::Tensor& actual, const at::Tensor& expected, Tolerance tol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " != " << expected.sizes();
  }
  if (actual.scalar_type() != expected.scalar_type()) {
    return ::testing::AssertionFailure()
           << "dtype " << actual.scalar_type() << " != " << expected.scalar_type();
  }
  if (actual.numel() == 0) return ::testing::AssertionSuccess();
  const at::Tensor a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  const at::Tensor excess = (a - e).abs() - (tol.atol + tol.rtol * e.abs());
  const int64_t worst = excess.flatten().argmax().item<int64_t>();
  if (excess.flatten()[worst].item<double>() > 0) {
    return ::testing::AssertionFailure()
           << "element " << worst << ": " << a.flatten()[worst].item<double>() << " vs "
           << e.flatten()[worst].item<double>() << " (atol " << tol.atol << ", rtol " << tol.rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

// The autograd node that made t, by name: a test of the fused path must not pass on the composite fallback.
inline bool made_by(const at::Tensor& t, const std::string& node) {
  return t.grad_fn() && t.grad_fn()->name().find(node) != std::string::npos;
}

}  // namespace l4::kernels::testing
