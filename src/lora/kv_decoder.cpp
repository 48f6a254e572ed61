#include "lora/kv_decoder.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/rope.h"

namespace l4::lora {

KvDecoder::KvDecoder(model::Llama4ForCausalLMImpl& model)
    : model_(model), config_(model.config()), keys_(model.config().num_hidden_layers),
      values_(model.config().num_hidden_layers) {
  config_.resolve();
  inv_freq_ = model::rope_inv_freq(config_).to(model.lm_head->weight.device());
}

at::Tensor KvDecoder::attention(model::AttentionImpl& attn, size_t layer, const at::Tensor& x,
                                const at::Tensor& positions) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  const int64_t head_dim = config_.resolved_head_dim();
  at::Tensor q = attn.q_proj->forward(x).view({b, t, heads, head_dim});
  at::Tensor k = attn.k_proj->forward(x).view({b, t, kv_heads, head_dim});
  at::Tensor v = attn.v_proj->forward(x).view({b, t, kv_heads, head_dim});
  const at::Tensor pos = positions.unsqueeze(0).expand({b, t});
  if (attn.use_rope) {
    const model::RopeTables tables = model::rope_tables(inv_freq_, pos);
    q = model::apply_rope(q, tables);
    k = model::apply_rope(k, tables);
  }
  if (attn.use_qk_norm) {
    q = model::rms_norm(q, config_.rms_norm_eps);
    k = model::rms_norm(k, config_.rms_norm_eps);
  }
  if (attn.temperature_tuning) {
    const at::Tensor floors = torch::floor((pos.to(torch::kFloat) + 1.0) / double(config_.floor_scale));
    q = (q * (torch::log1p(floors) * config_.attn_scale + 1.0).view({b, t, 1, 1})).to(q.scalar_type());
  }
  keys_[layer] = keys_[layer].defined() ? torch::cat({keys_[layer], k}, 1) : k;
  values_[layer] = values_[layer].defined() ? torch::cat({values_[layer], v}, 1) : v;
  const int64_t total = keys_[layer].size(1);
  // Which cached keys each new query may see: causal, and within the chunk on RoPE layers.
  const at::Tensor kpos = torch::arange(total, positions.options());
  const at::Tensor qpos = positions.unsqueeze(1);
  at::Tensor allowed = kpos.unsqueeze(0) <= qpos;
  const bool chunked = attn.use_rope && config_.attention_chunk_size && *config_.attention_chunk_size > 0;
  if (chunked) {
    const int64_t c = *config_.attention_chunk_size;
    allowed = allowed & (kpos.unsqueeze(0).div(c, "floor") == qpos.div(c, "floor"));
  }
  const int64_t groups = heads / kv_heads;
  const at::Tensor qh = q.transpose(1, 2);                                           // [B, H, T, D]
  const at::Tensor kh = keys_[layer].repeat_interleave(groups, 2).transpose(1, 2);   // [B, H, L, D]
  const at::Tensor vh = values_[layer].repeat_interleave(groups, 2).transpose(1, 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const at::Tensor out = at::scaled_dot_product_attention(qh, kh, vh, allowed, 0.0, false, scale);
  return attn.o_proj->forward(out.transpose(1, 2).reshape({b, t, heads * head_dim}));
}

at::Tensor KvDecoder::step(const at::Tensor& input_ids) {
  L4_CHECK(input_ids.dim() == 2 && input_ids.size(1) >= 1, "input_ids must be [batch, >=1 tokens]");
  return step_embeds(model_.model->embed_tokens->forward(input_ids));
}

at::Tensor KvDecoder::step_embeds(const at::Tensor& embeds) {
  L4_CHECK(embeds.dim() == 3 && embeds.size(1) >= 1, "embeddings must be [batch, >=1 tokens, hidden]");
  const int64_t t = embeds.size(1);
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(embeds.device());
  const at::Tensor positions = torch::arange(length_, length_ + t, long_options);
  auto& text = *model_.model;
  at::Tensor h = embeds;
  for (size_t i = 0; i < text.decoder_layers.size(); ++i) {
    auto& layer = *text.decoder_layers[i];
    h = h + attention(*layer.self_attn, i, layer.input_layernorm->forward(h), positions);
    const at::Tensor normed = layer.post_attention_layernorm->forward(h);
    h = h + (layer.moe ? layer.moe->forward(normed) : layer.mlp->forward(normed));
  }
  length_ += t;
  return model_.lm_head->forward(text.norm->forward(h)).to(at::kFloat);
}

namespace {

int64_t pick(const at::Tensor& logits, const SamplingOptions& options, at::Generator& gen) {
  if (options.temperature <= 0.0) return logits.argmax().item<int64_t>();
  at::Tensor probs = torch::softmax(logits / options.temperature, -1);
  if (options.top_p < 1.0) {
    const auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    const at::Tensor before = sorted.cumsum(-1) - sorted;  // mass of the more likely tokens
    const at::Tensor kept = sorted.masked_fill(before >= options.top_p, 0.0);
    probs = torch::zeros_like(probs).scatter(-1, order, kept);
  }
  return at::multinomial(probs, 1, false, gen).item<int64_t>();
}

bool is_stop(int64_t id, const std::vector<int64_t>& stops) {
  return std::find(stops.begin(), stops.end(), id) != stops.end();
}

void check_request(const std::vector<int64_t>& prompt_ids, const SamplingOptions& options) {
  L4_CHECK(!prompt_ids.empty(), "generate: the prompt has no tokens");
  L4_CHECK(options.temperature >= 0.0, "--temperature must be >= 0 (got {})", options.temperature);
  L4_CHECK(options.top_p > 0.0 && options.top_p <= 1.0, "--top-p must be in (0, 1] (got {})", options.top_p);
}

// Samples from the prefill's logits, then feeds each new token through the cache.
std::vector<int64_t> decode(KvDecoder& decoder, at::Tensor logits, const at::Device& device,
                            const SamplingOptions& options) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    const int64_t next = pick(logits[0][-1].to(at::kCPU), options, gen);
    if (is_stop(next, options.stop_ids)) break;
    out.push_back(next);
    if (i + 1 == options.max_tokens) break;
    logits = decoder.step(torch::tensor({next}, torch::kLong).view({1, 1}).to(device));
  }
  return out;
}

at::Tensor prompt_tensor(const std::vector<int64_t>& ids, const at::Device& device) {
  return torch::tensor(ids, torch::kLong).unsqueeze(0).to(device);
}

// An undefined pixel_values is a text-only prompt.
std::optional<at::Tensor> optional_pixels(const at::Tensor& pixel_values) {
  return pixel_values.defined() ? std::optional<at::Tensor>(pixel_values) : std::nullopt;
}

}  // namespace

std::vector<int64_t> generate(model::Llama4ForCausalLMImpl& model, const std::vector<int64_t>& prompt_ids,
                              const SamplingOptions& options) {
  check_request(prompt_ids, options);
  torch::NoGradGuard no_grad;
  const auto device = model.lm_head->weight.device();
  KvDecoder decoder(model);
  return decode(decoder, decoder.step(prompt_tensor(prompt_ids, device)), device, options);
}

std::vector<int64_t> generate(model::Llama4ForConditionalGenerationImpl& model,
                              const std::vector<int64_t>& prompt_ids, const at::Tensor& pixel_values,
                              const SamplingOptions& options) {
  check_request(prompt_ids, options);
  torch::NoGradGuard no_grad;
  auto& text = *model.language_model;
  const auto device = text.lm_head->weight.device();
  KvDecoder decoder(text);
  const at::Tensor embeds =
      model.fused_embeddings(prompt_tensor(prompt_ids, device), optional_pixels(pixel_values));
  return decode(decoder, decoder.step_embeds(embeds), device, options);
}

namespace {

// Greedy continuation re-running `logits_of` (a full forward of ids [1, T]) on the whole sequence per token.
template <class LogitsOf>
std::vector<int64_t> greedy_uncached(const std::vector<int64_t>& prompt_ids, int64_t max_tokens,
                                     const std::vector<int64_t>& stop_ids, LogitsOf logits_of) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids = prompt_ids, out;
  for (int64_t i = 0; i < max_tokens; ++i) {
    const at::Tensor logits = logits_of(torch::tensor(ids, torch::kLong).unsqueeze(0));
    const int64_t next = logits[0][-1].argmax().item<int64_t>();
    if (is_stop(next, stop_ids)) break;
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

}  // namespace

std::vector<int64_t> generate_greedy_uncached(model::Llama4ForCausalLMImpl& model,
                                              const std::vector<int64_t>& prompt_ids, int64_t max_tokens,
                                              const std::vector<int64_t>& stop_ids) {
  return greedy_uncached(prompt_ids, max_tokens, stop_ids,
                         [&](const at::Tensor& ids) { return model.forward(ids); });
}

std::vector<int64_t> generate_greedy_uncached(model::Llama4ForConditionalGenerationImpl& model,
                                              const std::vector<int64_t>& prompt_ids,
                                              const at::Tensor& pixel_values, int64_t max_tokens,
                                              const std::vector<int64_t>& stop_ids) {
  const std::optional<at::Tensor> pixels = optional_pixels(pixel_values);
  return greedy_uncached(prompt_ids, max_tokens, stop_ids,
                         [&](const at::Tensor& ids) { return model.forward(ids, pixels); });
}

}  // namespace l4::lora
