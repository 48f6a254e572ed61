// The fused loops of each kernel on the device its tensors are on: the CUDA loops for CUDA tensors in
// builds that have them (L4_KERNELS_CUDA), the CPU loops otherwise. fused_applies() has already checked
// that every operand is on one device the loops exist for. Included by the kernels' .cpp files only.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "kernels/rms_norm_cpu.h"
#include "kernels/rope_cpu.h"
#include "kernels/swiglu_cpu.h"
#if defined(L4_KERNELS_CUDA)
#include "kernels/fused_cuda.h"
#define L4_ON_CUDA(tensor, call) \
  if ((tensor).is_cuda()) return call
#else
#define L4_ON_CUDA(tensor, call)
#endif

namespace l4::kernels::detail {

inline std::pair<at::Tensor, at::Tensor> rms_norm_forward(const at::Tensor& x, const at::Tensor& weight,
                                                          double eps) {
  L4_ON_CUDA(x, rms_norm_forward_cuda(x, weight, eps));
  return rms_norm_forward_cpu(x, weight, eps);
}

inline std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad_y, const at::Tensor& x,
                                                           const at::Tensor& weight, const at::Tensor& rstd,
                                                           bool need_weight_grad) {
  L4_ON_CUDA(x, rms_norm_backward_cuda(grad_y, x, weight, rstd, need_weight_grad));
  return rms_norm_backward_cpu(grad_y, x, weight, rstd, need_weight_grad);
}

inline at::Tensor rope_forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  L4_ON_CUDA(x, rope_forward_cuda(x, cos, sin));
  return rope_forward_cpu(x, cos, sin);
}

inline at::Tensor rope_backward(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin) {
  L4_ON_CUDA(grad, rope_backward_cuda(grad, cos, sin));
  return rope_backward_cpu(grad, cos, sin);
}

inline void swiglu_forward(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) {
  L4_ON_CUDA(gate, swiglu_forward_cuda(gate, up, out));
  swiglu_forward_cpu(gate, up, out);
}

inline void swiglu_backward(const at::Tensor& grad, const at::Tensor& gate, const at::Tensor& up,
                            at::Tensor& grad_gate, at::Tensor& grad_up, at::Tensor& hidden) {
  L4_ON_CUDA(gate, swiglu_backward_cuda(grad, gate, up, grad_gate, grad_up, hidden));
  swiglu_backward_cpu(grad, gate, up, grad_gate, grad_up, hidden);
}

}  // namespace l4::kernels::detail

#undef L4_ON_CUDA
