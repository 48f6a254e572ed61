// The Llama 4 text model (HF Llama4ForCausalLM): embed -> N decoder layers (RMSNorm -> iRoPE attention ->
// RMSNorm -> MoE or dense SwiGLU) -> final RMSNorm -> untied lm_head. named_parameters() equals HF's
// state-dict names ("model.layers.3.feed_forward.experts.gate_up_proj", "lm_head.weight", ...).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <vector>

#include "config/model_arch.h"
#include "model/attention.h"
#include "model/layers.h"
#include "model/moe.h"

namespace l4::model {

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const config::TextConfig& config, int64_t layer, const at::TensorOptions& options,
                   const ExpertShard& shard = {});
  at::Tensor forward(const at::Tensor& x, AttentionContext& context);

  Attention self_attn{nullptr};
  Moe moe{nullptr};  // registered as "feed_forward" on MoE layers
  Mlp mlp{nullptr};  // registered as "feed_forward" on dense layers
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// HF Llama4TextModel: returns the final-normed hidden states.
class TextModelImpl : public torch::nn::Module {
 public:
  TextModelImpl(const config::TextConfig& config, const at::TensorOptions& options,
                const ExpertShard& shard = {});
  // input_ids [B, T] int64; position_ids [B, T] (default: index within the document); doc_ids [B, T]
  // (packed sequences: attention stays within equal ids).
  at::Tensor forward(const at::Tensor& input_ids,
                     const std::optional<at::Tensor>& position_ids = std::nullopt,
                     const std::optional<at::Tensor>& doc_ids = std::nullopt);
  // The same from input embeddings [B, T, D] (early fusion puts image features into them first).
  at::Tensor forward_embeds(const at::Tensor& embeds,
                            const std::optional<at::Tensor>& position_ids = std::nullopt,
                            const std::optional<at::Tensor>& doc_ids = std::nullopt);

  // Packed rows with B * T * T above this attend per document instead of through masks.
  int64_t max_mask_elements = int64_t{1} << 26;

  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<DecoderLayer> decoder_layers;  // the same modules as `layers`, typed
  RMSNorm norm{nullptr};

 private:
  config::TextConfig config_;
  at::Tensor inv_freq_;  // RoPE frequencies, not a parameter (HF: non-persistent buffer)
};
TORCH_MODULE(TextModel);

struct ModelOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  // Routed experts held by this instance (expert parallelism); default all. Parameter names are unchanged,
  // expert tensors are [shard count, ...].
  ExpertShard experts;
};

class Llama4ForCausalLMImpl : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialised: load weights or call reset_parameters().
  Llama4ForCausalLMImpl(const config::TextConfig& config, const ModelOptions& options = {});

  // Logits [B, T, V] in the model dtype.
  at::Tensor forward(const at::Tensor& input_ids,
                     const std::optional<at::Tensor>& position_ids = std::nullopt,
                     const std::optional<at::Tensor>& doc_ids = std::nullopt);
  at::Tensor forward_embeds(const at::Tensor& embeds,
                            const std::optional<at::Tensor>& position_ids = std::nullopt,
                            const std::optional<at::Tensor>& doc_ids = std::nullopt);

  // HF-style initialisation: normal(0, initializer_range) for matrices and experts, ones for norms.
  void reset_parameters(const std::optional<uint64_t>& seed = std::nullopt);
  // The same rules drawn per tensor (and per expert) from generators seeded by (seed, name[, expert]), see
  // parallel/rank_rng.h: the values do not depend on the expert shard, so every expert-parallel layout
  // starts from the weights of the single-process model.
  void init_parameters(uint64_t seed);

  // Router load balancing (off by default) and metrics of the last forward pass.
  void set_router_loss(const RouterLossOptions& options);
  // Replaces the local expert computation of every MoE layer (default: run_experts).
  void set_expert_runner(const ExpertRunner& runner);
  // Sum over MoE layers of their weighted router losses; undefined when disabled.
  at::Tensor router_loss() const;
  // One int64 [E] tensor per MoE layer, in layer order: (token, slot) pairs routed to each expert.
  std::vector<at::Tensor> expert_token_counts() const;

  const config::TextConfig& config() const { return config_; }
  // First routed expert held and how many (count = num_local_experts without expert parallelism).
  const ExpertShard& expert_shard() const { return shard_; }

  TextModel model{nullptr};
  Linear lm_head{nullptr};

 private:
  config::TextConfig config_;
  ExpertShard shard_;
};
TORCH_MODULE(Llama4ForCausalLM);

}  // namespace l4::model
