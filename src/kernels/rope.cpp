#include "kernels/rope.h"

#include <torch/autograd.h>

#include "kernels/fused_switch.h"
#include "kernels/kernel_loops.h"

namespace l4::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedRope : public torch::autograd::Function<FusedRope> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return detail::rope_forward(x, cos, sin);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {detail::rope_backward(grads[0].contiguous(), saved[0], saved[1]), at::Tensor(), at::Tensor()};
  }
};

// Shapes the loops take: x [B, T, H, D] with D even, tables [B or 1, T, 1, D] float32 on x's device.
bool fused_shapes(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (x.dim() != 4 || x.numel() == 0 || x.size(3) % 2 != 0) return false;
  for (const at::Tensor& t : {cos, sin}) {
    if (t.dim() != 4 || t.scalar_type() != at::kFloat || t.device() != x.device() || t.requires_grad())
      return false;
    if ((t.size(0) != 1 && t.size(0) != x.size(0)) || t.size(1) != x.size(1) || t.size(2) != 1 ||
        t.size(3) != x.size(3)) {
      return false;
    }
  }
  return cos.sizes() == sin.sizes();
}

}  // namespace

at::Tensor rope_composite(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto sizes = x.sizes();
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor swapped = xf.reshape({sizes[0], sizes[1], sizes[2], sizes[3] / 2, 2}).flip(-1).view(sizes);
  return (xf * cos + swapped * sin).to(x.scalar_type());
}

at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (!fused_shapes(x, cos, sin) || !fused_applies({x})) return rope_composite(x, cos, sin);
  return FusedRope::apply(x.contiguous(), cos.contiguous(), sin.contiguous());
}

}  // namespace l4::kernels
