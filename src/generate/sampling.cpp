#include "generate/sampling.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace l4::generate {

void check_sampling(const SamplingOptions& options) {
  L4_CHECK(options.max_new_tokens >= 1, "--max-new-tokens must be >= 1 (got {})", options.max_new_tokens);
  L4_CHECK(options.temperature >= 0.0 && std::isfinite(options.temperature),
           "--temperature must be a finite number >= 0 (got {})", options.temperature);
  L4_CHECK(options.top_k >= 0, "--top-k must be >= 0 (0 turns it off; got {})", options.top_k);
  L4_CHECK(options.top_p > 0.0 && options.top_p <= 1.0, "--top-p must be in (0, 1] (got {})", options.top_p);
}

at::Tensor warp_logits(const at::Tensor& logits, const SamplingOptions& options) {
  constexpr double kRemoved = -std::numeric_limits<double>::infinity();
  at::Tensor scores = logits.to(at::kFloat);
  if (options.temperature > 0.0 && options.temperature != 1.0) scores = scores / options.temperature;
  const int64_t vocab = scores.size(-1);
  if (options.top_k > 0) {
    // Ties with the k-th score stay in, as in transformers.
    const int64_t k = std::min(options.top_k, vocab);
    const at::Tensor kth = std::get<0>(scores.topk(k)).select(-1, k - 1).unsqueeze(-1);
    scores = scores.masked_fill(scores < kth, kRemoved);
  }
  if (options.top_p < 1.0) {
    // Ascending order: a token goes when the mass of the tokens no more likely than it is <= 1 - top_p; the
    // most likely token always stays.
    const auto [sorted, order] = scores.sort(/*dim=*/-1, /*descending=*/false);
    at::Tensor remove = sorted.softmax(-1).cumsum(-1) <= (1.0 - options.top_p);
    remove.select(-1, vocab - 1).fill_(false);
    remove = remove.scatter(-1, order, remove);
    scores = scores.masked_fill(remove, kRemoved);
  }
  return scores;
}

int64_t pick_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator) {
  if (options.temperature <= 0.0) return logits.argmax().item<int64_t>();
  const at::Tensor probs = warp_logits(logits, options).softmax(-1);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).item<int64_t>();
}

bool is_stop_token(int64_t id, const std::vector<int64_t>& stop_ids) {
  return std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end();
}

}  // namespace l4::generate
