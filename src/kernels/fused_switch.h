// Whether the fused CPU kernels run. Each kernel falls back to its composite LibTorch expression (the
// reference it is tested against) when they are off, on non-CPU tensors, for dtypes other than float32 and
// bfloat16, or on a CPU without the instructions the loops were built for.
#pragma once

#include <ATen/core/Tensor.h>

#include <initializer_list>

namespace l4::kernels {

// On unless the environment sets L4_FUSED_KERNELS=0 (read once); tests switch it per call site.
bool fused_enabled();
void set_fused_enabled(bool enabled);

// True when the fused path applies to these tensors: enabled, all on the CPU, all of one dtype (float32 or
// bfloat16). Undefined tensors (an absent weight) are skipped.
bool fused_applies(std::initializer_list<at::Tensor> tensors);

}  // namespace l4::kernels
