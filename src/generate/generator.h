// Generation on the model's own layers: the prompt (with its images fused in at the <|patch|> positions)
// runs once through model.forward with a KV cache (model/kv_cache.h), then each new token continues the
// cached sequence through the same forward. Attention, RoPE, QK-norm and temperature tuning are the
// training code's; nothing here repeats them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "generate/sampling.h"
#include "model/llama4.h"

namespace l4::generate {

// Generates after `prompt_ids` (one sequence); returns the new token ids (the stop token excluded).
// pixel_values [tiles, 3, S, S] (normalised, generate/image_prompt.h) feed the vision tower once, at the
// prefill; their features replace the prompt's <|patch|> embeddings (as many as the prompt has: l4::Error
// naming both counts otherwise). Undefined pixel_values: a text-only prompt.
std::vector<int64_t> generate(model::Llama4Impl& model, const std::vector<int64_t>& prompt_ids,
                              const at::Tensor& pixel_values, const SamplingOptions& options);

// The same greedy continuation without a cache (the whole sequence re-run each step, the vision tower
// included); for tests.
std::vector<int64_t> generate_greedy_uncached(model::Llama4Impl& model,
                                              const std::vector<int64_t>& prompt_ids,
                                              const at::Tensor& pixel_values, int64_t max_tokens,
                                              const std::vector<int64_t>& stop_ids);

}  // namespace l4::generate
