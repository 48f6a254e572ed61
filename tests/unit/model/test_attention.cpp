// Masks of iRoPE attention: fixed causal chunks, global causal, documents of packed rows; each checked
// against attention computed from the mask's definition.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "model/attention.h"

namespace l4::model {
namespace {

// Reference: softmax over keys allowed by allowed(b, q, k), in float64, q [B,T,H,D], k/v [B,T,Hkv,D].
template <class Allowed>
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                               Allowed allowed) {
  const int64_t b = q.size(0), t = q.size(1), h = q.size(2), hkv = k.size(2);
  at::Tensor mask = torch::zeros({b, 1, t, t}, torch::kBool);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t qi = 0; qi < t; ++qi)
      for (int64_t ki = 0; ki < t; ++ki) mask[i][0][qi][ki] = allowed(i, qi, ki);
  const at::Tensor qd = q.to(torch::kDouble).transpose(1, 2);
  const at::Tensor kd = k.to(torch::kDouble).transpose(1, 2).repeat_interleave(h / hkv, 1);
  const at::Tensor vd = v.to(torch::kDouble).transpose(1, 2).repeat_interleave(h / hkv, 1);
  const at::Tensor scores = torch::matmul(qd, kd.transpose(2, 3)) * scale;
  const at::Tensor probs = torch::softmax(scores.masked_fill(mask.logical_not(), -INFINITY), -1);
  return torch::matmul(probs, vd).transpose(1, 2).flatten(2);
}

config::TextConfig tiny(int64_t chunk) {
  config::TextConfig c;
  c.hidden_size = 16;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.attention_chunk_size = chunk;
  c.floor_scale = 2;
  c.attn_scale = 0.5;
  c.num_hidden_layers = 1;
  c.resolve();
  return c;
}

struct Qkv {
  at::Tensor q, k, v;
};
Qkv random_qkv(int64_t b, int64_t t) {
  torch::manual_seed(7);
  return {torch::randn({b, t, 4, 4}), torch::randn({b, t, 2, 4}), torch::randn({b, t, 2, 4})};
}

TEST(Attention, DocumentOffsetsRestartAtEachDocument) {
  const at::Tensor docs = torch::tensor({{0, 0, 0, 1, 1, 2}, {5, 5, 5, 5, 5, 5}}, torch::kLong);
  const at::Tensor expected = torch::tensor({{0, 1, 2, 0, 1, 0}, {0, 1, 2, 3, 4, 5}}, torch::kLong);
  EXPECT_TRUE(torch::equal(document_offsets(docs), expected));
}

class ChunkedAttention : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(ChunkedAttention, MatchesFixedChunkCausalDefinition) {
  const auto [seq_len, chunk] = GetParam();
  const config::TextConfig c = tiny(chunk);
  const Qkv x = random_qkv(2, seq_len);
  AttentionContext context(c, torch::ones({2}), 2, seq_len, torch::kCPU, std::nullopt, std::nullopt);
  const at::Tensor got = causal_attention(x.q, x.k, x.v, context, /*chunked=*/true, 0.5);
  const at::Tensor want = reference_attention(
      x.q, x.k, x.v, 0.5, [&](int64_t, int64_t q, int64_t k) { return k <= q && k / chunk == q / chunk; });
  EXPECT_TRUE(torch::allclose(got.to(torch::kDouble), want, 1e-5, 1e-5));
  const at::Tensor global = causal_attention(x.q, x.k, x.v, context, /*chunked=*/false, 0.5);
  const at::Tensor want_global =
      reference_attention(x.q, x.k, x.v, 0.5, [&](int64_t, int64_t q, int64_t k) { return k <= q; });
  EXPECT_TRUE(torch::allclose(global.to(torch::kDouble), want_global, 1e-5, 1e-5));
}

// Ragged tail, exact multiple, one chunk, chunk of 1.
INSTANTIATE_TEST_SUITE_P(Shapes, ChunkedAttention,
                         ::testing::Values(std::make_tuple(11, 4), std::make_tuple(12, 4),
                                           std::make_tuple(5, 8), std::make_tuple(6, 1)));

// Causal segments and the masks must agree with the definition.
class PackedRows : public ::testing::TestWithParam<bool> {};

TEST_P(PackedRows, DocumentsAttendOnlyWithinThemselvesAndChunkFromTheirStart) {
  const int64_t seq_len = 10, chunk = 3;
  const config::TextConfig c = tiny(chunk);
  const Qkv x = random_qkv(2, seq_len);
  // Row 1 reuses id 3 after id 4: a third document, not a continuation of the first.
  const at::Tensor docs = torch::tensor({{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, {3, 3, 4, 4, 4, 4, 4, 4, 3, 3}});
  const at::Tensor runs = torch::tensor({{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1, 1, 1, 2, 2}});
  const at::Tensor offsets = document_offsets(docs);
  AttentionContext context(c, torch::ones({2}), 2, seq_len, torch::kCPU, std::nullopt, docs);
  if (GetParam()) context.packed_attention = PackedAttention::kMasks;
  auto same_doc = [&](int64_t b, int64_t q, int64_t k) {
    return k <= q && runs[b][q].item<int64_t>() == runs[b][k].item<int64_t>();
  };
  const at::Tensor global = causal_attention(x.q, x.k, x.v, context, false, 0.5);
  EXPECT_TRUE(torch::allclose(global.to(torch::kDouble), reference_attention(x.q, x.k, x.v, 0.5, same_doc),
                              1e-5, 1e-5));
  const at::Tensor chunked = causal_attention(x.q, x.k, x.v, context, true, 0.5);
  const at::Tensor want = reference_attention(x.q, x.k, x.v, 0.5, [&](int64_t b, int64_t q, int64_t k) {
    return same_doc(b, q, k) &&
           offsets[b][q].item<int64_t>() / chunk == offsets[b][k].item<int64_t>() / chunk;
  });
  EXPECT_TRUE(torch::allclose(chunked.to(torch::kDouble), want, 1e-5, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(SegmentsOrMasks, PackedRows, ::testing::Values(false, true));

TEST(Attention, SingleDocumentRowsTakeTheUnmaskedPath) {
  const config::TextConfig c = tiny(4);
  const at::Tensor docs = torch::tensor({{3, 3, 3, 3, 3, 3}, {0, 0, 0, 0, 0, 0}});
  AttentionContext context(c, torch::ones({2}), 2, 6, torch::kCPU, std::nullopt, docs);
  EXPECT_FALSE(context.packed());
  EXPECT_TRUE(torch::equal(context.offsets(), torch::arange(6).expand({2, 6})));
}

TEST(Attention, TemperatureUsesTheOffsetWithinTheDocument) {
  const config::TextConfig c = tiny(4);
  const at::Tensor docs = torch::tensor({{0, 0, 0, 0, 1, 1, 1}});
  AttentionContext context(c, torch::ones({2}), 1, 7, torch::kCPU, std::nullopt, docs);
  const at::Tensor got = context.temperature().flatten();
  const int offsets[] = {0, 1, 2, 3, 0, 1, 2};
  for (int i = 0; i < 7; ++i) {
    const double want = 1.0 + 0.5 * std::log1p(std::floor((offsets[i] + 1.0) / 2.0));
    EXPECT_NEAR(got[i].item<double>(), want, 1e-6) << i;
  }
}

TEST(Attention, RejectsMisshapenDocIds) {
  const config::TextConfig c = tiny(4);
  EXPECT_THROW(AttentionContext(c, torch::ones({2}), 2, 5, torch::kCPU, std::nullopt, torch::zeros({2, 4})),
               l4::Error);
}

}  // namespace
}  // namespace l4::model
