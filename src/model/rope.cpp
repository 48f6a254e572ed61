#include "model/rope.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "kernels/rope.h"

namespace l4::model {

at::Tensor rope_inv_freq(const config::TextConfig& config) {
  const config::RopeParameters& rope = config.rope_parameters;
  const int64_t dim = config.resolved_head_dim();
  L4_CHECK(dim % 2 == 0, "model config: head_dim must be even for RoPE, got {}", dim);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const at::Tensor exponents =
      torch::arange(0, dim, 2, torch::TensorOptions().dtype(torch::kLong)).to(f32) / dim;
  at::Tensor inv_freq = 1.0 / torch::pow(rope.rope_theta, exponents);
  if (rope.rope_type == "default") return inv_freq;
  L4_CHECK(rope.rope_type == "llama3",
           "model config: rope_parameters.rope_type '{}' is not supported (expected 'default' or 'llama3')",
           rope.rope_type);
  // Same formula and float32 order of operations as HF's _compute_llama3_parameters.
  const double old_context = static_cast<double>(rope.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / rope.low_freq_factor;
  const double high_freq_wavelen = old_context / rope.high_freq_factor;
  const at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq);
  const at::Tensor smooth =
      (old_context / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
  const at::Tensor smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
  const at::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& position_ids) {
  const at::Tensor angles =
      position_ids.to(torch::kFloat).unsqueeze(-1) * inv_freq.to(position_ids.device()).view({1, 1, -1});
  const at::Tensor cos = angles.cos(), sin = angles.sin();
  return {torch::stack({cos, cos}, -1).flatten(2).unsqueeze(2),
          torch::stack({-sin, sin}, -1).flatten(2).unsqueeze(2)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables) {
  return kernels::rope(x, tables.cos, tables.sin);
}

}  // namespace l4::model
