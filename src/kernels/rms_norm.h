// RMSNorm as one fused kernel (CPU, and CUDA in CUDA builds) with a hand-written backward: y = x /
// sqrt(mean(x^2) + eps) [* weight], normalised in float32 whatever x's dtype, the normalised x cast back to
// x's dtype before the weight scales it (as Hugging Face's Llama 4 computes it). LibTorch runs that
// expression as pow, mean, add, rsqrt, mul, casts and mul, each a pass over memory and each saving its inputs
// for the backward; the fused kernel reads x once forward and once backward and keeps only 1/rms per row.
#pragma once

#include <ATen/core/Tensor.h>

namespace l4::kernels {

// The reference expression (LibTorch operators, autograd through each). weight may be undefined (qk-norm).
at::Tensor rms_norm_composite(const at::Tensor& x, const at::Tensor& weight, double eps);

// Same values; the fused kernel on the CPU or CUDA (fused_switch.h) for float32/bfloat16 with weight (if any)
// of x's dtype, else the composite. Differentiable in x and weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace l4::kernels
