// Loops of the fused RMSNorm on the CPU, over the rows of a contiguous x [rows, dim] (float32 or bfloat16;
// the weight, when defined, contiguous [dim] of x's dtype). Called by kernels/rms_norm.cpp only.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace l4::kernels::detail {

// y = x * rsqrt(mean(x^2) + eps) [* weight]; also returns 1/rms per row (float32 [rows]) for the backward.
std::pair<at::Tensor, at::Tensor> rms_norm_forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                       double eps);

// (grad_x, grad_weight) from grad_y (contiguous, x's shape and dtype); grad_weight only when asked for.
std::pair<at::Tensor, at::Tensor> rms_norm_backward_cpu(const at::Tensor& grad_y, const at::Tensor& x,
                                                        const at::Tensor& weight, const at::Tensor& rstd,
                                                        bool need_weight_grad);

}  // namespace l4::kernels::detail
