#include "kernels/rms_norm.h"

#include <torch/autograd.h>

#include "kernels/fused_switch.h"
#include "kernels/kernel_loops.h"

namespace l4::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedRmsNorm : public torch::autograd::Function<FusedRmsNorm> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    auto [y, rstd] = detail::rms_norm_forward(x, weight, eps);
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_x, grad_weight] = detail::rms_norm_backward(grads[0].contiguous(), saved[0], saved[1],
                                                           saved[2], ctx->needs_input_grad(1));
    return {grad_x, grad_weight, at::Tensor()};
  }
};

// Without weight (qk-norm): a node of its own, as autograd functions take no undefined tensor inputs.
class FusedRmsNormUnweighted : public torch::autograd::Function<FusedRmsNormUnweighted> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double eps) {
    auto [y, rstd] = detail::rms_norm_forward(x, at::Tensor(), eps);
    ctx->save_for_backward({x, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto grad_x = detail::rms_norm_backward(grads[0].contiguous(), saved[0], at::Tensor(), saved[1],
                                            /*need_weight_grad=*/false)
                      .first;
    return {grad_x, at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm_composite(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = (xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type());
  return weight.defined() ? normed * weight : normed;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const bool weight_fits = !weight.defined() || (weight.dim() == 1 && weight.size(0) == x.size(-1));
  if (x.dim() == 0 || x.numel() == 0 || !weight_fits || !fused_applies({x, weight})) {
    return rms_norm_composite(x, weight, eps);
  }
  if (!weight.defined()) return FusedRmsNormUnweighted::apply(x.contiguous(), eps);
  return FusedRmsNorm::apply(x.contiguous(), weight.contiguous(), eps);
}

}  // namespace l4::kernels
