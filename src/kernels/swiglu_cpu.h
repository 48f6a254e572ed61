// Loops of the fused SwiGLU on the CPU. Every operand is a 2-D [rows, width] view whose rows are contiguous
// (stride(1) == 1) and may be spaced apart (e.g. the gate or up half of a concatenated [rows, 2 * width]
// projection); all of one dtype, float32 or bfloat16. Called by kernels/swiglu.cpp only.
#pragma once

#include <ATen/core/Tensor.h>

namespace l4::kernels::detail {

// out = silu(gate) * up.
void swiglu_forward_cpu(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out);

// grad_gate = grad * up * silu'(gate), grad_up = grad * silu(gate); hidden (if defined) = silu(gate) * up,
// the forward's output recomputed for a following matmul's weight gradient.
void swiglu_backward_cpu(const at::Tensor& grad, const at::Tensor& gate, const at::Tensor& up,
                         at::Tensor& grad_gate, at::Tensor& grad_up, at::Tensor& hidden);

}  // namespace l4::kernels::detail
