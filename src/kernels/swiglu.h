// SwiGLU, silu(gate) * up, as one fused kernel (CPU, and CUDA in CUDA builds) with a hand-written backward.
// LibTorch runs it as silu and mul, each a pass that saves its inputs; the backward adds silu_backward and
// two muls. Fused: one pass forward, one backward (SiLU recomputed from the saved gate), math in float32 for
// bfloat16 tensors.
#pragma once

#include <ATen/core/Tensor.h>

namespace l4::kernels {

// The reference expression: at::silu(gate) * up.
at::Tensor swiglu_composite(const at::Tensor& gate, const at::Tensor& up);

// Same values, differentiable in gate and up (same shape); fused (CPU, CUDA) for float32/bfloat16.
at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up);

// For hand-written backward nodes (the grouped experts) on a concatenated projection gate_up [rows, 2F],
// gate columns first: hidden [rows, F] = silu(gate) * up.
void swiglu_concat_forward_out(const at::Tensor& gate_up, at::Tensor& hidden);

// The backward of the above for grad_hidden [rows, F]: grad_gate_up [rows, 2F] (gate columns first), and
// hidden recomputed (the down projection's weight gradient needs it).
void swiglu_concat_backward_out(const at::Tensor& grad_hidden, const at::Tensor& gate_up,
                                at::Tensor& grad_gate_up, at::Tensor& hidden);

}  // namespace l4::kernels
