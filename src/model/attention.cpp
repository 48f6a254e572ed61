#include "model/attention.h"

#include <tuple>

#include "core/error.h"

namespace l4::model {

at::Tensor document_offsets(const at::Tensor& doc_ids) {
  const int64_t seq_len = doc_ids.size(1);
  const at::Tensor index = torch::arange(seq_len, doc_ids.options().dtype(torch::kLong)).expand_as(doc_ids);
  at::Tensor starts_here = torch::ones_like(doc_ids, torch::kBool);
  if (seq_len > 1) {
    starts_here.narrow(1, 1, seq_len - 1)
        .copy_(doc_ids.narrow(1, 1, seq_len - 1) != doc_ids.narrow(1, 0, seq_len - 1));
  }
  // Index of the latest document start at or before each token.
  const at::Tensor start = std::get<0>(torch::where(starts_here, index, torch::zeros_like(index)).cummax(1));
  return index - start;
}

AttentionContext::AttentionContext(const config::TextConfig& config, const at::Tensor& inv_freq,
                                   int64_t batch, int64_t seq_len, const at::Device& device,
                                   const std::optional<at::Tensor>& position_ids,
                                   const std::optional<at::Tensor>& doc_ids, KvCache* cache)
    : batch_(batch), seq_len_(seq_len), cache_(cache) {
  if (config.attention_chunk_size && *config.attention_chunk_size > 0) {
    chunk_size_ = *config.attention_chunk_size;
  }
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device);
  if (doc_ids && doc_ids->defined()) {
    L4_CHECK(doc_ids->dim() == 2 && doc_ids->size(0) == batch && doc_ids->size(1) == seq_len,
             "doc_ids must have shape [{}, {}], got {}", batch, seq_len, c10::str(doc_ids->sizes()));
    const at::Tensor docs = doc_ids->to(long_options);
    // Rows holding a single document need no mask: keep the is_causal / chunk-folding fast paths.
    if (!docs.eq(docs.narrow(1, 0, std::min<int64_t>(seq_len, 1))).all().item<bool>()) {
      offsets_ = document_offsets(docs);
      // A document is a run of equal ids: number the runs so that an id reused later is another document.
      doc_ids_ = offsets_.eq(0).cumsum(1);
    }
  }
  if (cache_) {
    L4_CHECK(!doc_ids || !doc_ids->defined(),
             "generation with a KV cache takes one sequence per row (no doc_ids)");
    // Absolute positions: chunk membership and temperature tuning continue where the cache ends.
    const int64_t start = cache_->length();
    offsets_ = torch::arange(start, start + seq_len, long_options).unsqueeze(0).expand({batch, seq_len});
  }
  if (!offsets_.defined()) {
    offsets_ = torch::arange(seq_len, long_options).unsqueeze(0).expand({batch, seq_len});
  }
  at::Tensor positions = offsets_;
  if (position_ids && position_ids->defined()) {
    L4_CHECK(position_ids->dim() == 2 && position_ids->size(1) == seq_len &&
                 (position_ids->size(0) == batch || position_ids->size(0) == 1),
             "position_ids must have shape [{}, {}], got {}", batch, seq_len,
             c10::str(position_ids->sizes()));
    positions = position_ids->to(long_options).expand({batch, seq_len});
  }
  rope_ = rope_tables(inv_freq, positions);
  if (config.attn_temperature_tuning) {
    // Same float32 operations as HF: log1p(floor((p + 1) / floor_scale)) * attn_scale + 1.
    const at::Tensor floors = torch::floor((offsets_.to(torch::kFloat) + 1.0) / double(config.floor_scale));
    temperature_ = (torch::log1p(floors) * config.attn_scale + 1.0).view({batch, seq_len, 1, 1});
  }
}

const at::Tensor& AttentionContext::global_mask() {
  if (!global_mask_.defined()) {
    L4_ASSERT(packed(), "masks are only built for packed sequences");
    const at::Tensor causal =
        torch::ones({seq_len_, seq_len_}, doc_ids_.options().dtype(torch::kBool)).tril();
    global_mask_ = (doc_ids_.unsqueeze(2) == doc_ids_.unsqueeze(1)).logical_and_(causal).unsqueeze(1);
  }
  return global_mask_;
}

const at::Tensor& AttentionContext::chunked_mask() {
  if (!chunked_mask_.defined()) {
    if (!chunk_size_) return global_mask();
    const at::Tensor chunk = offsets_.div(*chunk_size_, "floor");
    chunked_mask_ = global_mask().logical_and((chunk.unsqueeze(2) == chunk.unsqueeze(1)).unsqueeze(1));
  }
  return chunked_mask_;
}

namespace {

// [B, T, H, D] -> [B, H, T, D] attention -> [B, T, H * D].
at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const std::optional<at::Tensor>& mask, double scale) {
  const bool gqa = q.size(2) != k.size(2);
  const at::Tensor out =
      at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask,
                                       /*dropout_p=*/0.0, /*is_causal=*/!mask.has_value(), scale, gqa);
  return out.transpose(1, 2).flatten(2);
}

// Causal attention of whole rows that each start a document at index 0; RoPE layers fold fixed chunks.
at::Tensor unpacked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const std::optional<int64_t>& chunk_size, double scale) {
  const int64_t seq_len = q.size(1);
  if (!chunk_size || seq_len <= *chunk_size) return sdpa(q, k, v, std::nullopt, scale);
  // Fixed chunks [0, C), [C, 2C), ...: fold the chunks into the batch so each is an independent causal
  // sequence. A ragged tail is zero-padded; padded keys come after every real query, so causality hides them.
  const int64_t chunk = *chunk_size;
  const int64_t chunks = (seq_len + chunk - 1) / chunk;
  const int64_t pad = chunks * chunk - seq_len;
  auto fold = [&](const at::Tensor& x) {
    const at::Tensor padded = pad ? at::constant_pad_nd(x, {0, 0, 0, 0, 0, pad}) : x;
    return padded.reshape({x.size(0) * chunks, chunk, x.size(2), x.size(3)});
  };
  const at::Tensor out = sdpa(fold(q), fold(k), fold(v), std::nullopt, scale);
  const at::Tensor unfolded = out.reshape({q.size(0), chunks * chunk, out.size(2)});
  return pad ? unfolded.narrow(1, 0, seq_len) : unfolded;
}

}  // namespace

const SegmentPlan& AttentionContext::segment_plan(bool chunked, int64_t heads, int64_t head_dim) {
  L4_ASSERT(packed(), "segments are only planned for packed sequences");
  // On RoPE layers chunks restart at every multiple of the chunk size within the document (the rule of
  // chunked_mask: same document and same offset / chunk); a chunk as long as the row never cuts.
  const bool cut = chunked && chunk_size_ && *chunk_size_ < seq_len_;
  std::optional<SegmentPlan>& plan = cut ? chunked_plan_ : global_plan_;
  if (!plan) {
    const at::Tensor offsets = offsets_.to(torch::kCPU).contiguous();
    const int64_t* o = offsets.data_ptr<int64_t>();
    std::vector<uint8_t> starts(static_cast<size_t>(offsets.numel()));
    for (size_t i = 0; i < starts.size(); ++i) starts[i] = cut ? o[i] % *chunk_size_ == 0 : o[i] == 0;
    // One call costs about as much as kCallMacs multiply-adds of attention; a causal query-key pair of one
    // head takes 2 * head_dim (scores and values).
    constexpr double kCallMacs = 1e6;
    plan = plan_segments(starts, kCallMacs / double(2 * heads * head_dim), offsets_.device());
  }
  return *plan;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            AttentionContext& context, bool chunked, double scale) {
  const std::optional<int64_t> chunk_size = chunked ? context.chunk_size() : std::nullopt;
  if (!context.packed()) return unpacked_attention(q, k, v, chunk_size, scale);
  if (context.packed_attention == PackedAttention::kMasks) {
    return sdpa(q, k, v, chunked ? context.chunked_mask() : context.global_mask(), scale);
  }
  return segment_attention(q, k, v, context.segment_plan(chunked, q.size(2), q.size(3)), scale);
}

at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            AttentionContext& context, bool chunked, double scale) {
  const int64_t new_tokens = q.size(1), total = k.size(1);
  const std::optional<int64_t> chunk_size = chunked ? context.chunk_size() : std::nullopt;
  if (total == new_tokens) return unpacked_attention(q, k, v, chunk_size, scale);
  // Which cached keys each new query may see, from absolute positions (the same for every row).
  const at::Tensor key_pos = torch::arange(total, context.offsets().options());
  const at::Tensor query_pos = context.offsets()[0].unsqueeze(1);  // [T, 1]
  at::Tensor allowed = key_pos.unsqueeze(0) <= query_pos;
  if (chunk_size) {
    allowed =
        allowed & (key_pos.unsqueeze(0).div(*chunk_size, "floor") == query_pos.div(*chunk_size, "floor"));
  }
  return sdpa(q, k, v, allowed.view({1, 1, new_tokens, total}), scale);
}

AttentionImpl::AttentionImpl(const config::TextConfig& config, int64_t layer,
                             const at::TensorOptions& options)
    : use_rope(config.is_rope_layer(layer)),
      use_qk_norm(config.use_qk_norm && use_rope),
      temperature_tuning(config.attn_temperature_tuning && !use_rope),
      layer_(layer),
      heads_(config.num_attention_heads),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.resolved_head_dim()),
      eps_(config.rms_norm_eps) {
  L4_CHECK(kv_heads_ > 0 && heads_ % kv_heads_ == 0,
           "model config: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", heads_,
           kv_heads_);
  L4_CHECK(!config.attention_bias, "model config: attention_bias=true is not supported (Llama 4 has none)");
  const int64_t d = config.hidden_size;
  q_proj = register_module("q_proj", Linear(d, heads_ * head_dim_, options));
  k_proj = register_module("k_proj", Linear(d, kv_heads_ * head_dim_, options));
  v_proj = register_module("v_proj", Linear(d, kv_heads_ * head_dim_, options));
  o_proj = register_module("o_proj", Linear(heads_ * head_dim_, d, options));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, AttentionContext& context) const {
  const int64_t b = x.size(0), t = x.size(1);
  at::Tensor q = q_proj->forward(x).view({b, t, heads_, head_dim_});
  at::Tensor k = k_proj->forward(x).view({b, t, kv_heads_, head_dim_});
  at::Tensor v = v_proj->forward(x).view({b, t, kv_heads_, head_dim_});
  if (use_rope) {
    q = apply_rope(q, context.rope());
    k = apply_rope(k, context.rope());
  }
  if (use_qk_norm) {
    q = rms_norm(q, eps_);
    k = rms_norm(k, eps_);
  }
  if (temperature_tuning && context.temperature().defined()) {
    q = (q * context.temperature()).to(q.scalar_type());
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  if (KvCache* cache = context.cache()) {
    std::tie(k, v) = cache->append(layer_, k, v);
    return o_proj->forward(cached_attention(q, k, v, context, /*chunked=*/use_rope, scale));
  }
  return o_proj->forward(causal_attention(q, k, v, context, /*chunked=*/use_rope, scale));
}

}  // namespace l4::model
