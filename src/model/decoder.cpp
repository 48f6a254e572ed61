#include "model/decoder.h"

#include <c10/core/GradMode.h>

#include <tuple>

#include "core/error.h"
#include "model/recompute.h"

namespace l4::model {

DecoderLayerImpl::DecoderLayerImpl(const config::TextConfig& config, int64_t layer,
                                   const at::TensorOptions& options, const ExpertShard& shard) {
  self_attn = register_module("self_attn", Attention(config, layer, options));
  if (config.is_moe_layer(layer)) {
    moe = register_module("feed_forward", Moe(config, options, shard));
  } else {
    mlp = register_module("feed_forward", Mlp(config.hidden_size, config.intermediate_size_mlp, options));
  }
  input_layernorm =
      register_module("input_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps, options));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps, options));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, AttentionContext& context) {
  const at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), context);
  const at::Tensor normed = post_attention_layernorm->forward(h);
  return h + (moe ? moe->forward(normed) : mlp->forward(normed));
}

at::Tensor recomputed_layer_forward(DecoderLayerImpl& layer, const at::Tensor& x,
                                    const std::shared_ptr<AttentionContext>& context) {
  DecoderLayerImpl* raw = &layer;
  const TensorFn fn = [raw, context](const std::vector<at::Tensor>& in) {
    std::optional<std::pair<at::Tensor, at::Tensor>> recorded;
    // Grad mode is on only in the backward's recompute: keep what the forward recorded.
    if (raw->moe && c10::GradMode::is_enabled()) {
      recorded.emplace(raw->moe->last_router_loss, raw->moe->last_expert_counts);
    }
    std::vector<at::Tensor> out{raw->forward(in[0], *context)};
    if (raw->moe && raw->moe->last_router_loss.defined()) out.push_back(raw->moe->last_router_loss);
    if (recorded) std::tie(raw->moe->last_router_loss, raw->moe->last_expert_counts) = *recorded;
    return out;
  };
  std::vector<at::Tensor> params;
  for (const at::Tensor& p : layer.parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  const std::vector<at::Tensor> out = checkpointed(fn, {x}, params);
  if (out.size() > 1) layer.moe->last_router_loss = out[1];
  return out[0];
}

TextModelImpl::TextModelImpl(const config::TextConfig& config, const at::TensorOptions& options,
                             const ExpertShard& shard)
    : config_(config) {
  config_.resolve();
  L4_CHECK(config_.hidden_act == "silu", "model config: hidden_act '{}' is not supported (expected 'silu')",
           config_.hidden_act);
  embed_tokens = register_module("embed_tokens", Embedding(config_.vocab_size, config_.hidden_size, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    decoder_layers.push_back(DecoderLayer(config_, i, options, shard));
    layers->push_back(decoder_layers.back());
  }
  norm = register_module("norm", RMSNorm(config_.hidden_size, config_.rms_norm_eps, options));
  inv_freq_ = rope_inv_freq(config_);
}

at::Tensor TextModelImpl::embed(const at::Tensor& input_ids) {
  L4_CHECK(input_ids.dim() == 2, "input_ids must be [batch, seq_len], got shape {}",
           c10::str(input_ids.sizes()));
  L4_CHECK(input_ids.scalar_type() == at::kLong, "input_ids must be int64, got {}",
           c10::toString(input_ids.scalar_type()));
  if (input_ids.numel() > 0) {
    const auto [min_id, max_id] = at::aminmax(input_ids);
    const at::Tensor range = torch::stack({min_id, max_id}).to(torch::kCPU);  // one device sync
    const int64_t lo = range[0].item<int64_t>(), hi = range[1].item<int64_t>();
    L4_CHECK(lo >= 0 && hi < config_.vocab_size, "input_ids must lie in [0, {}), found values in [{}, {}]",
             config_.vocab_size, lo, hi);
  }
  return embed_tokens->forward(input_ids);
}

at::Tensor TextModelImpl::forward_embeds(const at::Tensor& embeds,
                                         const std::optional<at::Tensor>& position_ids,
                                         const std::optional<at::Tensor>& doc_ids, KvCache* cache) {
  L4_CHECK(embeds.dim() == 3 && embeds.size(2) == config_.hidden_size,
           "input embeddings must be [batch, seq_len, {}], got shape {}", config_.hidden_size,
           c10::str(embeds.sizes()));
  AttentionContext context(config_, inv_freq_, embeds.size(0), embeds.size(1), embeds.device(), position_ids,
                           doc_ids, cache);
  context.packed_attention = packed_attention;
  at::Tensor h = embeds;
  if (recompute_layers && is_training() && c10::GradMode::is_enabled() && cache == nullptr) {
    // One copy of the context that the layers' recomputes share (the masks it builds are reused).
    const auto shared = std::make_shared<AttentionContext>(std::move(context));
    for (auto& layer : decoder_layers) h = recomputed_layer_forward(*layer, h, shared);
    return norm->forward(h);
  }
  for (auto& layer : decoder_layers) h = layer->forward(h, context);
  if (cache) cache->advance(embeds.size(1));
  return norm->forward(h);
}

}  // namespace l4::model
