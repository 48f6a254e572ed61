// Whether the fused kernels run. Each kernel falls back to its composite LibTorch expression (the reference
// it is tested against) when they are off, for dtypes other than float32 and bfloat16, on CPU tensors where
// the CPU lacks the instructions the loops were built for, on CUDA tensors in a build without the CUDA loops
// (fused_cuda.cu), and on any other device.
#pragma once

#include <ATen/core/Tensor.h>

#include <initializer_list>

namespace l4::kernels {

// The CPU loops: on unless the environment sets L4_FUSED_KERNELS=0 (read once; tests switch it per call
// site) and the CPU has the loops' instructions.
bool fused_enabled();
void set_fused_enabled(bool enabled);

// Whether this build has the CUDA loops (built against a CUDA LibTorch with a CUDA compiler).
bool fused_cuda_built();

// True when the fused path applies to these tensors: switched on, all on one device (the CPU, with
// fused_enabled(), or a CUDA device, with fused_cuda_built()), all of one dtype (float32 or bfloat16).
// Undefined tensors (an absent weight) are skipped.
bool fused_applies(std::initializer_list<at::Tensor> tensors);

}  // namespace l4::kernels
