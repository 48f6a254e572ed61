// Rotary embedding of interleaved pairs as one fused kernel (CPU, and CUDA in CUDA builds) with a
// hand-written backward (the rotation by minus the angle). LibTorch runs the composite as a cast, view/flip
// copy, two muls, an add and a cast, each saving its inputs; fused: one pass each way, nothing saved but the
// tables.
#pragma once

#include <ATen/core/Tensor.h>

namespace l4::kernels {

// The reference expression: x [B, T, H, D] rotated in float32 with cos/sin float32 [B or 1, T, 1, D] laid
// out as model/rope.h describes (x * cos + swap_pairs(x) * sin), cast back to x's dtype.
at::Tensor rope_composite(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Same values, differentiable in x (the tables are constants); fused (CPU, CUDA) for float32/bfloat16 x.
at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace l4::kernels
