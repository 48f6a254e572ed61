// The tiny LoRA model of the LoRA and generation tests: every feature LoRA meets (MoE and dense layers,
// a NoPE layer with temperature tuning, chunked attention), all LoRA targets, and adapter values made
// non-zero so that the adapter changes the outputs.
#pragma once

#include <torch/torch.h>

#include "config/model_arch.h"
#include "lora/lora_modules.h"
#include "model/llama4.h"

namespace l4::lora::testing {

inline config::TextConfig tiny_config() {
  config::TextConfig c;
  c.vocab_size = 97;
  c.hidden_size = 16;
  c.intermediate_size = 12;
  c.intermediate_size_mlp = 20;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.num_local_experts = 3;
  c.num_experts_per_tok = 1;
  c.interleave_moe_layer_step = 2;
  c.attention_chunk_size = 8;
  c.no_rope_layers = {1, 1, 1, 0};  // layer 3 is NoPE (global attention, temperature tuning)
  c.floor_scale = 4;
  c.attn_scale = 0.3;
  c.initializer_range = 0.3;
  c.resolve();
  return c;
}

inline LoraOptions all_targets() {
  LoraOptions o;
  o.rank = 2;
  o.alpha = 6.0;
  o.targets = {"q_proj",
               "k_proj",
               "v_proj",
               "o_proj",
               "shared_expert",
               "experts",
               "feed_forward.gate_proj",
               "feed_forward.up_proj",
               "feed_forward.down_proj"};
  return o;
}

// Gives every B a non-zero value so the adapter changes the outputs.
inline void randomize_lora(model::Llama4Impl& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) item.value().normal_(0.0, 0.2);
  }
}

}  // namespace l4::lora::testing
