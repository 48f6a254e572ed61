// Packed attention by causal segments against the dense-mask path: documents of lengths around the chunk
// size, rows of one document, GQA and MHA, fp32 forward and gradients, bf16.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>

#include "model/attention.h"
#include "model/segment_attention.h"

namespace l4::model {
namespace {

TEST(SegmentBuckets, EqualLengthsShareOneCall) {
  const auto buckets = bucket_segment_lengths({7, 7, 7, 7}, 1e9);
  ASSERT_EQ(buckets.size(), 1u);
  EXPECT_EQ(buckets[0].count, 4);
  EXPECT_EQ(buckets[0].length, 7);
}

TEST(SegmentBuckets, FreeCallsGroupExactLengthsAndDearCallsPadToTheLongest) {
  const std::vector<int64_t> lengths = {5, 1, 9, 5, 2, 9, 9};
  const auto exact = bucket_segment_lengths(lengths, 0.0);
  ASSERT_EQ(exact.size(), 4u);
  const int64_t want[][2] = {{1, 1}, {1, 2}, {2, 5}, {3, 9}};
  for (size_t i = 0; i < exact.size(); ++i) {
    EXPECT_EQ(exact[i].count, want[i][0]) << i;
    EXPECT_EQ(exact[i].length, want[i][1]) << i;
  }
  const auto one = bucket_segment_lengths(lengths, 1e12);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].count, 7);
  EXPECT_EQ(one[0].length, 9);
  // In between: the short ones join each other, never the long ones (9 * 10 / 2 per padded segment).
  const auto mid = bucket_segment_lengths(lengths, 30.0);
  ASSERT_EQ(mid.size(), 2u);
  EXPECT_EQ(mid[0].count, 4);
  EXPECT_EQ(mid[0].length, 5);
  EXPECT_EQ(mid[1].count, 3);
  EXPECT_EQ(mid[1].length, 9);
}

TEST(SegmentPlan, GatherAndScatterAreInverse) {
  // Segments of 2, 1, 3, 2 tokens; free calls: buckets {1}, {2, 2}, {3}.
  const std::vector<uint8_t> starts = {1, 0, 1, 1, 0, 0, 1, 0};
  const SegmentPlan plan = plan_segments(starts, 0.0, torch::kCPU);
  EXPECT_FALSE(plan.identity);
  EXPECT_TRUE(torch::equal(plan.gather, torch::tensor({2, 0, 1, 6, 7, 3, 4, 5}, torch::kLong)));
  EXPECT_TRUE(torch::equal(plan.gather.index_select(0, plan.scatter), torch::arange(8)));
  // Dear calls: one bucket of 4 x 3 tokens, padding repeats each segment's first token.
  const SegmentPlan padded = plan_segments(starts, 1e9, torch::kCPU);
  EXPECT_TRUE(torch::equal(padded.gather, torch::tensor({0, 1, 0, 2, 2, 2, 3, 4, 5, 6, 7, 6}, torch::kLong)));
  EXPECT_TRUE(torch::equal(padded.gather.index_select(0, padded.scatter), torch::arange(8)));
  EXPECT_TRUE(plan_segments({1, 0, 1, 0, 1, 0}, 0.0, torch::kCPU).identity);
}

struct Case {
  int64_t chunk, heads, kv_heads;
  int64_t unit;  // document lengths are built around this (the chunk, unless the chunk exceeds the rows)
};

config::TextConfig make_config(const Case& c, int64_t head_dim) {
  config::TextConfig config;
  config.hidden_size = c.heads * head_dim;
  config.num_attention_heads = c.heads;
  config.num_key_value_heads = c.kv_heads;
  config.head_dim = head_dim;
  config.attention_chunk_size = c.chunk;
  config.num_hidden_layers = 1;
  config.resolve();
  return config;
}

// Doc ids of rows whose documents have the given lengths (each row's lengths sum to seq_len).
at::Tensor doc_ids_of(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<at::Tensor> out;
  for (const auto& lengths : rows) {
    std::vector<at::Tensor> parts;
    for (size_t d = 0; d < lengths.size(); ++d) parts.push_back(torch::full({lengths[d]}, int64_t(d)));
    out.push_back(torch::cat(parts));
  }
  return torch::stack(out);
}

struct Result {
  at::Tensor out, dq, dk, dv;
};

Result run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& grad,
           AttentionContext& context, bool chunked, PackedAttention how) {
  context.packed_attention = how;
  const at::Tensor qq = q.detach().requires_grad_(), kk = k.detach().requires_grad_(),
                   vv = v.detach().requires_grad_();
  const at::Tensor out = causal_attention(qq, kk, vv, context, chunked, 0.3);
  out.backward(grad);
  return {out.detach(), qq.grad(), kk.grad(), vv.grad()};
}

double max_err(const at::Tensor& got, const at::Tensor& want) {
  return (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>() /
         std::max(1.0, want.abs().max().item<double>());
}

class SegmentAttention : public ::testing::TestWithParam<Case> {};

TEST_P(SegmentAttention, MatchesMasksForwardAndBackward) {
  const Case c = GetParam();
  const int64_t chunk = c.unit, head_dim = 16;
  // Row 0: lengths 1, C-1, C, C+1, several chunks; row 1: one document; row 2: short documents, then a long
  // one.
  const std::vector<int64_t> row0 = {1, chunk - 1, chunk, chunk + 1, 3 * chunk + 2, 7};
  const int64_t seq_len = std::accumulate(row0.begin(), row0.end(), int64_t{0});
  const at::Tensor docs = doc_ids_of({row0, {seq_len}, {1, 1, 2, 3, 1, seq_len - 8}});
  const config::TextConfig config = make_config(c, head_dim);
  const int64_t batch = docs.size(0);
  torch::manual_seed(3);
  const at::Tensor q = torch::randn({batch, seq_len, c.heads, head_dim});
  const at::Tensor k = torch::randn({batch, seq_len, c.kv_heads, head_dim});
  const at::Tensor v = torch::randn({batch, seq_len, c.kv_heads, head_dim});
  const at::Tensor grad = torch::randn({batch, seq_len, c.heads * head_dim});
  AttentionContext context(config, torch::ones({head_dim / 2}), batch, seq_len, torch::kCPU, std::nullopt,
                           docs);
  ASSERT_TRUE(context.packed());
  for (const bool chunked : {true, false}) {
    const Result want = run(q, k, v, grad, context, chunked, PackedAttention::kMasks);
    const Result got = run(q, k, v, grad, context, chunked, PackedAttention::kSegments);
    const char* what = chunked ? "chunked" : "global";
    EXPECT_LE(max_err(got.out, want.out), 1e-6) << what;
    EXPECT_LE(max_err(got.dq, want.dq), 1e-6) << what;
    EXPECT_LE(max_err(got.dk, want.dk), 1e-6) << what;
    EXPECT_LE(max_err(got.dv, want.dv), 1e-6) << what;

    // bf16: within bf16 rounding of the fp32 result, as close as the bf16 mask path is.
    const Result bf = run(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16),
                          grad.to(torch::kBFloat16), context, chunked, PackedAttention::kSegments);
    const Result bf_masks = run(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16),
                                grad.to(torch::kBFloat16), context, chunked, PackedAttention::kMasks);
    // Short segments run widened to float32 on the CPU; what comes out keeps the caller's dtype.
    for (const at::Tensor& t : {bf.out, bf.dq, bf.dk, bf.dv})
      EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << what;
    EXPECT_LE(max_err(bf.out, want.out), 2e-2) << what;
    EXPECT_LE(max_err(bf.out, bf_masks.out), 2e-2) << what;
    for (const auto& [g, w] : {std::pair{bf.dq, want.dq}, {bf.dk, want.dk}, {bf.dv, want.dv}}) {
      EXPECT_LE(max_err(g, w), 5e-2) << what;
    }
  }
  // The documents matter: attention over whole rows differs (the comparison above can fail).
  const Result whole = run(q, k, v, grad, context, false, PackedAttention::kMasks);
  AttentionContext unpacked(config, torch::ones({head_dim / 2}), batch, seq_len, torch::kCPU, std::nullopt,
                            std::nullopt);
  EXPECT_GT(max_err(run(q, k, v, grad, unpacked, false, PackedAttention::kSegments).out, whole.out), 1e-2);
}

// Chunk 4 and 16 (several q blocks of the flash kernel per segment), a chunk longer than the rows, GQA and
// MHA.
INSTANTIATE_TEST_SUITE_P(Shapes, SegmentAttention,
                         ::testing::Values(Case{4, 4, 2, 4}, Case{16, 4, 1, 16}, Case{16, 2, 2, 16},
                                           Case{4096, 4, 2, 16}));

}  // namespace
}  // namespace l4::model
