// Packed attention without [T, T] masks. A packed row holds several documents; on RoPE layers each document
// is further cut into chunks of attention_chunk_size tokens (counted from the document's start). Every such
// segment (a document, or a document's chunk) is an independent causal sequence, so the row's attention is
// causal attention of each segment on its own. Segments of similar length are folded into the batch of one
// is_causal call, zero work for the keys a dense mask would hide.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace l4::model {

// `count` segments, each padded at its end to `length` tokens, attended in one call.
struct SegmentBucket {
  int64_t count = 0;
  int64_t length = 0;
};

// Groups segment lengths into buckets: padding a segment to its bucket's length costs the padded causal
// work, each bucket costs one call. Minimises call_cost + count * length * (length + 1) / 2 summed over the
// buckets (in units of one causal query-key pair); exact over the sorted distinct lengths (O(K^2)).
// Buckets come in ascending length; every length of `lengths` fits the bucket it is counted in.
std::vector<SegmentBucket> bucket_segment_lengths(const std::vector<int64_t>& lengths, double call_cost);

// Where each token goes for the bucketed calls and back.
struct SegmentPlan {
  std::vector<SegmentBucket> buckets;
  // [slots] int64: the flat token index (row-major over [B, T]) that fills each slot of the buckets, bucket
  // after bucket, segment after segment. Padding slots repeat the segment's first token: they sit after
  // every real query of their segment, so causality hides them, and their outputs are dropped.
  at::Tensor gather;
  // [B * T] int64: the slot holding each token's output.
  at::Tensor scatter;
  // The buckets hold the tokens in their own order without padding: no gather or scatter needed.
  bool identity = false;
};

// Plan for segment starts `starts` (flat, row-major, starts[0] must be true; a row start is a segment
// start), one flag per token. `call_cost` as for bucket_segment_lengths.
SegmentPlan plan_segments(const std::vector<uint8_t>& starts, double call_cost, const at::Device& device);

// Causal attention of every segment of `plan` on its own: q [B, T, H, D], k, v [B, T, Hkv, D] (GQA when
// Hkv < H) -> [B, T, H * D].
at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const SegmentPlan& plan, double scale);

}  // namespace l4::model
