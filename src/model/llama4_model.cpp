#include "model/llama4_model.h"

#include "core/error.h"
#include "parallel/rank_rng.h"

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

at::Tensor TextModelImpl::forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& position_ids,
                                  const std::optional<at::Tensor>& doc_ids) {
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
  return forward_embeds(embed_tokens->forward(input_ids), position_ids, doc_ids);
}

at::Tensor TextModelImpl::forward_embeds(const at::Tensor& embeds,
                                         const std::optional<at::Tensor>& position_ids,
                                         const std::optional<at::Tensor>& doc_ids) {
  L4_CHECK(embeds.dim() == 3 && embeds.size(2) == config_.hidden_size,
           "input embeddings must be [batch, seq_len, {}], got shape {}", config_.hidden_size,
           c10::str(embeds.sizes()));
  AttentionContext context(config_, inv_freq_, embeds.size(0), embeds.size(1), embeds.device(), position_ids,
                           doc_ids);
  context.max_mask_elements = max_mask_elements;
  at::Tensor h = embeds;
  for (auto& layer : decoder_layers) h = layer->forward(h, context);
  return norm->forward(h);
}

Llama4ForCausalLMImpl::Llama4ForCausalLMImpl(const config::TextConfig& config, const ModelOptions& options)
    : config_(config) {
  config_.resolve();
  L4_CHECK(!config_.tie_word_embeddings,
           "model config: tie_word_embeddings=true is not supported (Llama 4 has an untied lm_head)");
  shard_ = {options.experts.begin,
            options.experts.count > 0 ? options.experts.count : config_.num_local_experts};
  const auto tensor_options = torch::TensorOptions().dtype(options.dtype).device(options.device);
  model = register_module("model", TextModel(config_, tensor_options, options.experts));
  lm_head = register_module("lm_head", Linear(config_.hidden_size, config_.vocab_size, tensor_options));
}

at::Tensor Llama4ForCausalLMImpl::forward(const at::Tensor& input_ids,
                                          const std::optional<at::Tensor>& position_ids,
                                          const std::optional<at::Tensor>& doc_ids) {
  return lm_head->forward(model->forward(input_ids, position_ids, doc_ids));
}

at::Tensor Llama4ForCausalLMImpl::forward_embeds(const at::Tensor& embeds,
                                                 const std::optional<at::Tensor>& position_ids,
                                                 const std::optional<at::Tensor>& doc_ids) {
  return lm_head->forward(model->forward_embeds(embeds, position_ids, doc_ids));
}

void Llama4ForCausalLMImpl::reset_parameters(const std::optional<uint64_t>& seed) {
  if (seed) torch::manual_seed(*seed);
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    at::Tensor& p = item.value();
    if (p.dim() == 1) {  // the RMSNorm weights are the only vectors
      p.fill_(1.0);
    } else {
      p.normal_(0.0, config_.initializer_range);
    }
  }
  // nn.Embedding(padding_idx=pad_token_id) starts with a zero row, as in HF.
  const auto pad = config_.pad_token_id;
  if (pad && *pad >= 0 && *pad < config_.vocab_size) model->embed_tokens->weight[*pad].zero_();
}

void Llama4ForCausalLMImpl::init_parameters(uint64_t seed) {
  const parallel::InitFn normal = parallel::normal_init(config_.initializer_range);
  const parallel::InitFn ones = [](at::Tensor& out, at::Generator&) { out.fill_(1.0); };
  for (auto& item : named_parameters()) {
    at::Tensor& p = item.value();
    const parallel::InitFn& init = p.dim() == 1 ? ones : normal;  // the RMSNorm weights are the only vectors
    if (item.key().find(".experts.") != std::string::npos) {
      parallel::init_experts(p, shard_.begin, seed, item.key(), init);
    } else {
      parallel::init_replicated(p, seed, item.key(), init);
    }
  }
  torch::NoGradGuard no_grad;
  const auto pad = config_.pad_token_id;
  if (pad && *pad >= 0 && *pad < config_.vocab_size) model->embed_tokens->weight[*pad].zero_();
}

void Llama4ForCausalLMImpl::set_router_loss(const RouterLossOptions& options) {
  for (auto& layer : model->decoder_layers) {
    if (layer->moe) layer->moe->loss_options = options;
  }
}

void Llama4ForCausalLMImpl::set_expert_runner(const ExpertRunner& runner) {
  for (auto& layer : model->decoder_layers) {
    if (layer->moe) layer->moe->expert_runner = runner;
  }
}

at::Tensor Llama4ForCausalLMImpl::router_loss() const {
  at::Tensor total;
  for (const auto& layer : model->decoder_layers) {
    if (!layer->moe || !layer->moe->last_router_loss.defined()) continue;
    total = total.defined() ? total + layer->moe->last_router_loss : layer->moe->last_router_loss;
  }
  return total;
}

std::vector<at::Tensor> Llama4ForCausalLMImpl::expert_token_counts() const {
  std::vector<at::Tensor> counts;
  for (const auto& layer : model->decoder_layers) {
    if (layer->moe) counts.push_back(layer->moe->last_expert_counts);
  }
  return counts;
}

}  // namespace l4::model
