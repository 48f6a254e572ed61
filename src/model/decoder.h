// The Llama 4 text decoder (HF Llama4TextModel): embed -> N decoder layers (RMSNorm -> iRoPE attention ->
// RMSNorm -> MoE or dense SwiGLU) -> final RMSNorm. Parameter names follow HF ("layers.3.feed_forward.
// experts.gate_up_proj"; "model." in front inside the root module, model/llama4.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <optional>
#include <vector>

#include "config/model_arch.h"
#include "model/attention.h"
#include "model/kv_cache.h"
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

// layer->forward(x, context) as one recomputed node (model/recompute.h): nothing inside the layer is kept for
// backward. The MoE router loss of the call stays differentiable (it is an output of the node), and a
// recompute leaves the layer's recorded router loss and expert counts as the forward set them.
at::Tensor recomputed_layer_forward(DecoderLayerImpl& layer, const at::Tensor& x,
                                    const std::shared_ptr<AttentionContext>& context);

// HF Llama4TextModel: returns the final-normed hidden states.
class TextModelImpl : public torch::nn::Module {
 public:
  TextModelImpl(const config::TextConfig& config, const at::TensorOptions& options,
                const ExpertShard& shard = {});
  // Checks input_ids [B, T] (int64, within the vocabulary) and embeds them.
  at::Tensor embed(const at::Tensor& input_ids);
  // Final-normed hidden states from input embeddings [B, T, D] (early fusion puts image features into them
  // first). position_ids [B, T] (default: index within the document); doc_ids [B, T] (packed sequences:
  // attention stays within equal ids); cache: continue a generation (kv_cache.h).
  at::Tensor forward_embeds(const at::Tensor& embeds,
                            const std::optional<at::Tensor>& position_ids = std::nullopt,
                            const std::optional<at::Tensor>& doc_ids = std::nullopt,
                            KvCache* cache = nullptr);

  const config::TextConfig& config() const { return config_; }

  // How packed rows attend (masks only as a reference for tests and benchmarks).
  PackedAttention packed_attention = PackedAttention::kSegments;
  // Training forwards keep only each decoder layer's input and recompute the layer in backward.
  bool recompute_layers = false;

  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<DecoderLayer> decoder_layers;  // the same modules as `layers`, typed
  RMSNorm norm{nullptr};

 private:
  config::TextConfig config_;
  at::Tensor inv_freq_;  // RoPE frequencies, not a parameter (HF: non-persistent buffer)
};
TORCH_MODULE(TextModel);

}  // namespace l4::model
