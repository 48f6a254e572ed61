// Incremental decoding of the text model with a KV cache, for `llama4 generate`. Attention follows the
// model's iRoPE rules at absolute positions: RoPE layers attend only within their chunk of
// attention_chunk_size tokens, NoPE layers attend globally with q temperature tuning from the absolute
// position. Equal (up to float rounding) to running the model on the whole sequence each step.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "model/llama4_model.h"
#include "model/llama4_multimodal.h"

namespace l4::lora {

class KvDecoder {
 public:
  explicit KvDecoder(model::Llama4ForCausalLMImpl& model);
  // Appends tokens [B, T] at positions [length(), length() + T); returns their logits [B, T, V] (fp32).
  at::Tensor step(const at::Tensor& input_ids);
  // The same from input embeddings [B, T, D] (a multimodal prefill: image features fused in).
  at::Tensor step_embeds(const at::Tensor& embeds);
  int64_t length() const { return length_; }

 private:
  at::Tensor attention(model::AttentionImpl& attn, size_t layer, const at::Tensor& x,
                       const at::Tensor& positions);
  model::Llama4ForCausalLMImpl& model_;
  config::TextConfig config_;
  at::Tensor inv_freq_;
  std::vector<at::Tensor> keys_, values_;  // per layer [B, L, Hkv, D] after RoPE / QK-norm
  int64_t length_ = 0;
};

struct SamplingOptions {
  int64_t max_tokens = 128;
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // <|eot|>, eos
};

// Generates after `prompt_ids` (one sequence); returns the new token ids (the stop token excluded).
std::vector<int64_t> generate(model::Llama4ForCausalLMImpl& model, const std::vector<int64_t>& prompt_ids,
                              const SamplingOptions& options);

// With images: pixel_values [tiles, 3, S, S] (normalised, as lora/image_prompt.h makes them) go through the
// vision tower and projector once, at prefill, and their features replace the prompt's <|patch|>
// embeddings (as many as the prompt has: l4::Error naming both counts otherwise); the text tokens that
// follow are decoded from the cache. An undefined pixel_values is a text-only prompt.
std::vector<int64_t> generate(model::Llama4ForConditionalGenerationImpl& model,
                              const std::vector<int64_t>& prompt_ids, const at::Tensor& pixel_values,
                              const SamplingOptions& options);

// The same greedy continuation without a cache (the whole sequence re-run each step); for tests.
std::vector<int64_t> generate_greedy_uncached(model::Llama4ForCausalLMImpl& model,
                                              const std::vector<int64_t>& prompt_ids, int64_t max_tokens,
                                              const std::vector<int64_t>& stop_ids);
// ... and with images: the full multimodal forward (vision tower included) each step.
std::vector<int64_t> generate_greedy_uncached(model::Llama4ForConditionalGenerationImpl& model,
                                              const std::vector<int64_t>& prompt_ids,
                                              const at::Tensor& pixel_values, int64_t max_tokens,
                                              const std::vector<int64_t>& stop_ids);

}  // namespace l4::lora
