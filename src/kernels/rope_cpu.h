// Loops of the fused rotary embedding on the CPU. x [B, T, H, D] contiguous (float32 or bfloat16); cos and
// sin float32 [B or 1, T, 1, D] contiguous, the tables of model/rope.h. Called by kernels/rope.cpp only.
#pragma once

#include <ATen/core/Tensor.h>

namespace l4::kernels::detail {

// out[d] = x[d] * cos[d] + x[d ^ 1] * sin[d]  (each pair (2j, 2j+1) rotated by its angle).
at::Tensor rope_forward_cpu(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The backward, the rotation by minus the angle: grad_x[d] = g[d] * cos[d] + g[d ^ 1] * sin[d ^ 1].
at::Tensor rope_backward_cpu(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace l4::kernels::detail
