// The routed experts' SwiGLU MLPs over rows sorted by expert, as one autograd node with a hand-written
// backward. Autograd over per-expert slices (split, chunk, unbind) re-assembles every gradient with cat and
// stack copies; here each expert's matmuls write straight into slices of preallocated outputs and weight
// gradients, and the backward recomputes SiLU from the saved gate/up pre-activations instead of keeping the
// activations. The matmuls take autograd's operands in its order; the SwiGLU between them is the fused kernel
// of kernels/swiglu.h on the CPU (float32 within 1e-6 of at::silu(gate) * up).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace l4::model {

// rows [R, D] sorted by expert (rows_per_expert[e] consecutive rows each), gate_up_proj [E, D, 2F] (gate
// columns first), down_proj [E, F, D] -> [R, D]. Differentiable in rows and both weights; under autocast the
// three inputs are cast to the autocast dtype first, as a matmul would be.
at::Tensor grouped_expert_mlp(const at::Tensor& rows, const std::vector<int64_t>& rows_per_expert,
                              const at::Tensor& gate_up_proj, const at::Tensor& down_proj);

}  // namespace l4::model
