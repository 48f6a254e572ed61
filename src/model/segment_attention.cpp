#include "model/segment_attention.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>

#include "core/error.h"

namespace l4::model {

std::vector<SegmentBucket> bucket_segment_lengths(const std::vector<int64_t>& lengths, double call_cost) {
  std::map<int64_t, int64_t> histogram;
  for (const int64_t length : lengths) {
    L4_ASSERT(length > 0, "segment lengths must be positive, got {}", length);
    ++histogram[length];
  }
  const std::vector<std::pair<int64_t, int64_t>> distinct(histogram.begin(), histogram.end());
  const size_t k = distinct.size();
  // prefix[i]: segments shorter than distinct[i]; best[i]: cheapest cover of the i shortest distinct lengths.
  std::vector<int64_t> prefix(k + 1, 0);
  for (size_t i = 0; i < k; ++i) prefix[i + 1] = prefix[i] + distinct[i].second;
  std::vector<double> best(k + 1, std::numeric_limits<double>::infinity());
  std::vector<size_t> first(k + 1, 0);
  best[0] = 0;
  for (size_t j = 1; j <= k; ++j) {
    const double length = static_cast<double>(distinct[j - 1].first);
    const double pairs = length * (length + 1) / 2;
    for (size_t i = 0; i < j; ++i) {
      const double cost = best[i] + call_cost + static_cast<double>(prefix[j] - prefix[i]) * pairs;
      if (cost < best[j]) {
        best[j] = cost;
        first[j] = i;
      }
    }
  }
  std::vector<SegmentBucket> buckets;
  for (size_t j = k; j > 0; j = first[j]) {
    buckets.push_back({prefix[j] - prefix[first[j]], distinct[j - 1].first});
  }
  std::reverse(buckets.begin(), buckets.end());
  return buckets;
}

SegmentPlan plan_segments(const std::vector<uint8_t>& starts, double call_cost, const at::Device& device) {
  const int64_t tokens = static_cast<int64_t>(starts.size());
  L4_ASSERT(tokens > 0 && starts[0], "the first token must start a segment");
  std::vector<int64_t> seg_start, seg_length;
  for (int64_t i = 0; i < tokens; ++i) {
    if (starts[i]) {
      seg_start.push_back(i);
      seg_length.push_back(0);
    }
    ++seg_length.back();
  }
  SegmentPlan plan;
  plan.buckets = bucket_segment_lengths(seg_length, call_cost);
  if (plan.buckets.size() == 1 && std::all_of(seg_length.begin(), seg_length.end(), [&](int64_t length) {
        return length == plan.buckets[0].length;
      })) {
    plan.identity = true;  // equal segments in row-major order: the tokens are already in place
    return plan;
  }
  // Each segment goes to the shortest bucket that holds it (the buckets partition the sorted lengths).
  std::vector<std::vector<int64_t>> members(plan.buckets.size());
  for (size_t s = 0; s < seg_length.size(); ++s) {
    const auto it =
        std::lower_bound(plan.buckets.begin(), plan.buckets.end(), seg_length[s],
                         [](const SegmentBucket& bucket, int64_t length) { return bucket.length < length; });
    members[static_cast<size_t>(it - plan.buckets.begin())].push_back(static_cast<int64_t>(s));
  }
  int64_t slots = 0;
  for (const SegmentBucket& bucket : plan.buckets) slots += bucket.count * bucket.length;
  at::Tensor gather = torch::empty({slots}, torch::kLong);
  at::Tensor scatter = torch::empty({tokens}, torch::kLong);
  int64_t* g = gather.data_ptr<int64_t>();
  int64_t* sc = scatter.data_ptr<int64_t>();
  int64_t slot = 0;
  for (size_t b = 0; b < plan.buckets.size(); ++b) {
    L4_ASSERT(static_cast<int64_t>(members[b].size()) == plan.buckets[b].count, "bucket count mismatch");
    for (const int64_t s : members[b]) {
      const int64_t start = seg_start[s], length = seg_length[s];
      for (int64_t j = 0; j < plan.buckets[b].length; ++j, ++slot) {
        if (j < length) {
          g[slot] = start + j;
          sc[start + j] = slot;
        } else {
          g[slot] = start;
        }
      }
    }
  }
  plan.gather = gather.to(device);
  plan.scatter = scatter.to(device);
  return plan;
}

namespace {

// On the CPU, LibTorch's 16-bit flash attention is slower than its float32 one for short sequences: forward
// and backward of 2048 tokens at 8 heads / 2 kv heads / head_dim 32 took 20-28 ms in bf16 against 7 ms
// widened to float32 (casts included) for segments of 32 tokens, 22-26 against 12-13 at 128, 21-23 against
// 17-19 at 256, the same at 384-512, and bf16 won from 1024 on. Shorter segments are widened; float32
// also rounds less.
constexpr int64_t kCpuWidenBelowLength = 512;

bool widen_on_cpu(const at::Tensor& q, int64_t length) {
  return q.device().is_cpu() && length < kCpuWidenBelowLength &&
         (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf);
}

// Causal attention of `count` sequences of `length` tokens: q [count * length, H, D] -> [count * length,
// H*D].
at::Tensor causal_block(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t count,
                        int64_t length, double scale) {
  // Short 16-bit segments are widened below autocast, which would cast the widened inputs back.
  const bool widen = widen_on_cpu(q, length);
  std::optional<c10::impl::ExcludeDispatchKeyGuard> no_autocast;
  if (widen) no_autocast.emplace(c10::autocast_dispatch_keyset);
  auto heads_first = [&](const at::Tensor& x) {
    return (widen ? x.to(at::kFloat) : x).view({count, length, x.size(1), x.size(2)}).transpose(1, 2);
  };
  const bool gqa = q.size(1) != k.size(1);
  const at::Tensor out = at::scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v),
                                                          std::nullopt, /*dropout_p=*/0.0,
                                                          /*is_causal=*/true, scale, gqa);
  const at::Tensor rows = out.transpose(1, 2).reshape({count * length, -1});
  return widen ? rows.to(q.scalar_type()) : rows;
}

}  // namespace

at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const SegmentPlan& plan, double scale) {
  const int64_t batch = q.size(0), seq_len = q.size(1), tokens = batch * seq_len;
  at::Tensor qf = q.reshape({tokens, q.size(2), q.size(3)});
  at::Tensor kf = k.reshape({tokens, k.size(2), k.size(3)});
  at::Tensor vf = v.reshape({tokens, v.size(2), v.size(3)});
  if (plan.identity) {
    const SegmentBucket& bucket = plan.buckets[0];
    return causal_block(qf, kf, vf, bucket.count, bucket.length, scale).view({batch, seq_len, -1});
  }
  L4_ASSERT(plan.scatter.numel() == tokens, "segment plan for {} tokens, attention of {}",
            plan.scatter.numel(), tokens);
  qf = qf.index_select(0, plan.gather);
  kf = kf.index_select(0, plan.gather);
  vf = vf.index_select(0, plan.gather);
  std::vector<int64_t> sizes;
  for (const SegmentBucket& bucket : plan.buckets) sizes.push_back(bucket.count * bucket.length);
  const auto qs = qf.split_with_sizes(sizes), ks = kf.split_with_sizes(sizes),
             vs = vf.split_with_sizes(sizes);
  std::vector<at::Tensor> outs;
  outs.reserve(sizes.size());
  for (size_t b = 0; b < sizes.size(); ++b) {
    outs.push_back(causal_block(qs[b], ks[b], vs[b], plan.buckets[b].count, plan.buckets[b].length, scale));
  }
  const at::Tensor slots = outs.size() == 1 ? outs[0] : torch::cat(outs, 0);
  return slots.index_select(0, plan.scatter).view({batch, seq_len, -1});
}

}  // namespace l4::model
