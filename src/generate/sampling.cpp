#include "generate/sampling.h"

#include <algorithm>

#include "core/error.h"

namespace l4::generate {

void check_sampling(const SamplingOptions& options) {
  L4_CHECK(options.max_tokens >= 1, "--max-tokens must be >= 1 (got {})", options.max_tokens);
  L4_CHECK(options.temperature >= 0.0, "--temperature must be >= 0 (got {})", options.temperature);
  L4_CHECK(options.top_p > 0.0 && options.top_p <= 1.0, "--top-p must be in (0, 1] (got {})", options.top_p);
}

int64_t pick_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator) {
  if (options.temperature <= 0.0) return logits.argmax().item<int64_t>();
  at::Tensor probs = torch::softmax(logits / options.temperature, -1);
  if (options.top_p < 1.0) {
    const auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    const at::Tensor before = sorted.cumsum(-1) - sorted;  // mass of the more likely tokens
    const at::Tensor kept = sorted.masked_fill(before >= options.top_p, 0.0);
    probs = torch::zeros_like(probs).scatter(-1, order, kept);
  }
  return at::multinomial(probs, 1, false, generator).item<int64_t>();
}

bool is_stop_token(int64_t id, const std::vector<int64_t>& stop_ids) {
  return std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end();
}

}  // namespace l4::generate
