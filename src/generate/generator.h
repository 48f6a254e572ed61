// Generation on the model's own layers: the prompt (with its images fused in at the <|patch|> positions)
// runs once through model.forward with a KV cache (model/kv_cache.h), then each new token continues the
// cached sequence through the same forward. Attention, RoPE, QK-norm and temperature tuning are the
// training code's; nothing here repeats them.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "generate/sampling.h"
#include "model/kv_cache.h"
#include "model/llama4.h"

namespace l4::generate {

// Sees each new token as it is chosen (streaming); returning false ends the generation after it.
using TokenCallback = std::function<bool(int64_t token)>;

// A conversation: its KV cache lives across turns. Each turn gives the whole conversation's ids (the chat
// template re-rendered with the new user message); the longest prefix already in the cache is reused and
// only the rest runs through the model, so a chat costs what its new tokens cost. A prefix that differs
// from what was generated (the reply re-tokenised differently) only shortens the reuse.
class ChatSession {
 public:
  ChatSession(model::Llama4Impl& model, uint64_t seed);

  // Generates after `ids`; returns the new ids (the stop token excluded). pixel_values [tiles, 3, S, S]
  // (normalised, generate/image_prompt.h) go to the vision tower with the part of `ids` not yet cached,
  // which must then hold all of their <|patch|> tokens (l4::Error naming both counts otherwise).
  std::vector<int64_t> respond(const std::vector<int64_t>& ids, const at::Tensor& pixel_values,
                               const SamplingOptions& options, const TokenCallback& on_token = {});

  // Tokens whose keys and values are cached, and how many of the last turn's ids came from the cache.
  int64_t cached_tokens() const { return static_cast<int64_t>(cached_ids_.size()); }
  int64_t reused_tokens() const { return reused_; }

 private:
  at::Tensor forward(const std::vector<int64_t>& ids, const at::Tensor& pixel_values);

  model::Llama4Impl& model_;
  model::KvCache cache_;
  std::vector<int64_t> cached_ids_;  // the tokens behind cache_, in order
  at::Generator generator_;
  int64_t reused_ = 0;
};

// One prompt, one answer (a fresh ChatSession).
std::vector<int64_t> generate(model::Llama4Impl& model, const std::vector<int64_t>& prompt_ids,
                              const at::Tensor& pixel_values, const SamplingOptions& options,
                              const TokenCallback& on_token = {});

// The same greedy continuation without a cache (the whole sequence re-run each step, the vision tower
// included); for tests.
std::vector<int64_t> generate_greedy_uncached(model::Llama4Impl& model,
                                              const std::vector<int64_t>& prompt_ids,
                                              const at::Tensor& pixel_values, int64_t max_new_tokens,
                                              const std::vector<int64_t>& stop_ids);

}  // namespace l4::generate
