// Rotary position embedding of the Llama 4 text model: interleaved complex pairs (dims 2j, 2j+1 of each
// head form a + ib, multiplied by e^{i p theta_j}), not Llama 3's rotate-half layout. Frequencies follow
// HF's "default" or "llama3" (Scout: factor 16, low = high = 1, original 8192) rope_type.
#pragma once

#include <ATen/core/Tensor.h>

#include "config/model_arch.h"

namespace l4::model {

// Inverse frequencies theta_j, float32 [head_dim / 2] on the CPU, computed as HF computes them.
at::Tensor rope_inv_freq(const config::TextConfig& config);

// Per-dimension factors for positions [B, T], float32 [B, T, 1, head_dim] (broadcast over heads):
// cos(p theta_j) at dims 2j and 2j+1; sin as -sin(p theta_j) at 2j and +sin(p theta_j) at 2j+1. Then
// rope(x) = x * cos + swap_pairs(x) * sin, i.e. (a + ib) e^{i p theta_j} without select/stack copies.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
};
RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& position_ids);

// x [B, T, H, head_dim]: rotates each (2j, 2j+1) pair in float32 and casts back to x's dtype.
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables);

}  // namespace l4::model
