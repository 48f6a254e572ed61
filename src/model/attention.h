// Grouped-query attention with iRoPE. RoPE layers: RoPE, optional weightless QK RMS-norm, causal attention
// inside fixed chunks of attention_chunk_size tokens. NoPE layers: no RoPE, global causal attention, and
// (attn_temperature_tuning) q scaled by 1 + attn_scale * log(1 + floor((p + 1) / floor_scale)).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <vector>

#include "config/model_arch.h"
#include "model/kv_cache.h"
#include "model/layers.h"
#include "model/rope.h"
#include "model/segment_attention.h"

namespace l4::model {

// How packed rows (several documents per row) attend.
enum class PackedAttention {
  // Each causal segment (a document; on RoPE layers a document's chunk) on its own, segments of similar
  // length batched into is_causal calls: no [T, T] mask, work of the causal pairs actually needed.
  kSegments,
  // Boolean [B, 1, T, T] masks over the whole row: O(T^2) memory and work. The reference for kSegments.
  kMasks,
};

// Everything about positions and documents that all layers of one forward pass share.
//   position_ids: RoPE positions [B, T] (default: the offset within the document).
//   offsets: the token's index within its document [B, T] (HF's cache position of a document run alone);
//            chunk membership and the temperature tuning use it.
//   doc_ids: [B, T] (undefined without packing); a document is a run of equal ids, tokens attend only
//            within their document.
//   cache: generation: the tokens continue the cached sequence at positions [length, length + T) (one
//          document, no doc_ids); every layer attends over its cached keys and appends the new ones.
class AttentionContext {
 public:
  AttentionContext(const config::TextConfig& config, const at::Tensor& inv_freq, int64_t batch,
                   int64_t seq_len, const at::Device& device, const std::optional<at::Tensor>& position_ids,
                   const std::optional<at::Tensor>& doc_ids, KvCache* cache = nullptr);

  int64_t batch() const { return batch_; }
  int64_t seq_len() const { return seq_len_; }
  bool packed() const { return doc_ids_.defined(); }
  std::optional<int64_t> chunk_size() const { return chunk_size_; }
  const RopeTables& rope() const { return rope_; }
  // q scale of NoPE layers, float32 [B, T, 1, 1]; undefined when tuning is off.
  const at::Tensor& temperature() const { return temperature_; }
  const at::Tensor& offsets() const { return offsets_; }
  // Boolean masks [B, 1, T, T] (true = may attend), built on first use; only needed with packing.
  const at::Tensor& global_mask();
  const at::Tensor& chunked_mask();
  // Segments of the packed rows (documents, or documents cut into chunks), built on first use (one host
  // sync per context); heads and head_dim weigh the work of a segment against the cost of a call.
  const SegmentPlan& segment_plan(bool chunked, int64_t heads, int64_t head_dim);
  KvCache* cache() const { return cache_; }

  PackedAttention packed_attention = PackedAttention::kSegments;

 private:
  int64_t batch_, seq_len_;
  std::optional<int64_t> chunk_size_;
  at::Tensor doc_ids_, offsets_, temperature_;
  RopeTables rope_;
  at::Tensor global_mask_, chunked_mask_;
  std::optional<SegmentPlan> global_plan_, chunked_plan_;
  KvCache* cache_ = nullptr;
};

// Offsets of each token within its document: the index minus the index where its run of equal doc ids starts.
at::Tensor document_offsets(const at::Tensor& doc_ids);

// Attention of q [B, T, H, D] over k, v [B, T, Hkv, D]; returns [B, T, H * D]. Uses chunk blocks
// (memory O(T * C)) and is_causal when unpacked; when packed, causal segments (or, as context's
// packed_attention says, boolean masks).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            AttentionContext& context, bool chunked, double scale);

// Attention of the new tokens q [B, T, H, D] over every cached key and value [B, L, Hkv, D] (the new ones
// last): causal at the absolute positions, and within the chunk on RoPE layers. A prefill of an empty cache
// (L = T) runs the same code as training.
at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            AttentionContext& context, bool chunked, double scale);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const config::TextConfig& config, int64_t layer, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, AttentionContext& context) const;

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  bool use_rope;
  bool use_qk_norm;
  bool temperature_tuning;

 private:
  int64_t layer_, heads_, kv_heads_, head_dim_;
  double eps_;
};
TORCH_MODULE(Attention);

}  // namespace l4::model
