// Loops of the fused kernels on CUDA, with the contracts of their CPU twins (rms_norm_cpu.h, rope_cpu.h,
// swiglu_cpu.h): same shapes, dtypes (float32, bfloat16) and layouts, same order of float operations where
// it decides a rounding. Defined in fused_cuda.cu, which is built only against a CUDA LibTorch with a CUDA
// compiler (then L4_KERNELS_CUDA=1); called through kernel_loops.h only.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace l4::kernels::detail {

std::pair<at::Tensor, at::Tensor> rms_norm_forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                                                        double eps);
std::pair<at::Tensor, at::Tensor> rms_norm_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x,
                                                         const at::Tensor& weight, const at::Tensor& rstd,
                                                         bool need_weight_grad);

at::Tensor rope_forward_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor rope_backward_cuda(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin);

void swiglu_forward_cuda(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out);
void swiglu_backward_cuda(const at::Tensor& grad, const at::Tensor& gate, const at::Tensor& up,
                          at::Tensor& grad_gate, at::Tensor& grad_up, at::Tensor& hidden);

}  // namespace l4::kernels::detail
