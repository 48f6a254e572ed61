#include "generate/generator.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "core/error.h"

namespace l4::generate {
namespace {

at::Tensor ids_tensor(const std::vector<int64_t>& ids, const at::Device& device) {
  return torch::tensor(ids, torch::kLong).unsqueeze(0).to(device);
}

// Logits of the last position, float on the CPU.
at::Tensor last_logits(const at::Tensor& logits) {
  return logits[0][-1].to(at::kCPU, at::kFloat);
}

}  // namespace

ChatSession::ChatSession(model::Llama4Impl& model, uint64_t seed)
    : model_(model),
      cache_(model.text_config().num_hidden_layers),
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

at::Tensor ChatSession::forward(const std::vector<int64_t>& ids, const at::Tensor& pixel_values) {
  model::ModelInput input;
  input.input_ids = ids_tensor(ids, model_.device());
  input.pixel_values = pixel_values;
  input.cache = &cache_;
  const at::Tensor logits = last_logits(model_.forward(input));
  cached_ids_.insert(cached_ids_.end(), ids.begin(), ids.end());
  return logits;
}

std::vector<int64_t> ChatSession::respond(const std::vector<int64_t>& ids, const at::Tensor& pixel_values,
                                          const SamplingOptions& options, const TokenCallback& on_token) {
  L4_CHECK(!ids.empty(), "generate: the prompt has no tokens");
  check_sampling(options);
  torch::NoGradGuard no_grad;
  // Reuse the cached prefix; at least the last prompt token runs again, for its logits.
  const auto mismatch = std::mismatch(cached_ids_.begin(), cached_ids_.end(), ids.begin(), ids.end());
  const int64_t common =
      std::min<int64_t>(mismatch.first - cached_ids_.begin(), static_cast<int64_t>(ids.size()) - 1);
  cache_.truncate(common);
  cached_ids_.resize(static_cast<size_t>(common));
  reused_ = common;
  at::Tensor logits = forward(std::vector<int64_t>(ids.begin() + common, ids.end()), pixel_values);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int64_t next = pick_token(logits, options, generator_);
    if (is_stop_token(next, options.stop_ids)) break;
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (i + 1 == options.max_new_tokens) break;
    logits = forward({next}, at::Tensor());
  }
  return out;
}

std::vector<int64_t> generate(model::Llama4Impl& model, const std::vector<int64_t>& prompt_ids,
                              const at::Tensor& pixel_values, const SamplingOptions& options,
                              const TokenCallback& on_token) {
  ChatSession session(model, options.seed);
  return session.respond(prompt_ids, pixel_values, options, on_token);
}

std::vector<int64_t> generate_greedy_uncached(model::Llama4Impl& model,
                                              const std::vector<int64_t>& prompt_ids,
                                              const at::Tensor& pixel_values, int64_t max_new_tokens,
                                              const std::vector<int64_t>& stop_ids) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids = prompt_ids, out;
  model::ModelInput input;
  input.pixel_values = pixel_values;
  for (int64_t i = 0; i < max_new_tokens; ++i) {
    input.input_ids = ids_tensor(ids, model.device());
    const int64_t next = last_logits(model.forward(input)).argmax().item<int64_t>();
    if (is_stop_token(next, stop_ids)) break;
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

}  // namespace l4::generate
