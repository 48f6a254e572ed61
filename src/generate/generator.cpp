#include "generate/generator.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "model/kv_cache.h"

namespace l4::generate {
namespace {

at::Tensor prompt_tensor(const std::vector<int64_t>& ids, const at::Device& device) {
  return torch::tensor(ids, torch::kLong).unsqueeze(0).to(device);
}

// Logits of the last position, float on the CPU.
at::Tensor last_logits(const at::Tensor& logits) {
  return logits[0][-1].to(at::kCPU, at::kFloat);
}

}  // namespace

std::vector<int64_t> generate(model::Llama4Impl& model, const std::vector<int64_t>& prompt_ids,
                              const at::Tensor& pixel_values, const SamplingOptions& options) {
  L4_CHECK(!prompt_ids.empty(), "generate: the prompt has no tokens");
  check_sampling(options);
  torch::NoGradGuard no_grad;
  const at::Device device = model.device();
  model::KvCache cache(model.text_config().num_hidden_layers);
  model::ModelInput input;
  input.input_ids = prompt_tensor(prompt_ids, device);
  input.pixel_values = pixel_values;
  input.cache = &cache;
  at::Tensor logits = last_logits(model.forward(input));
  input.pixel_values = at::Tensor();  // the images are in the cache now
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    const int64_t next = pick_token(logits, options, gen);
    if (is_stop_token(next, options.stop_ids)) break;
    out.push_back(next);
    if (i + 1 == options.max_tokens) break;
    input.input_ids = torch::full({1, 1}, next, at::TensorOptions(at::kLong).device(device));
    logits = last_logits(model.forward(input));
  }
  return out;
}

std::vector<int64_t> generate_greedy_uncached(model::Llama4Impl& model,
                                              const std::vector<int64_t>& prompt_ids,
                                              const at::Tensor& pixel_values, int64_t max_tokens,
                                              const std::vector<int64_t>& stop_ids) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids = prompt_ids, out;
  model::ModelInput input;
  input.pixel_values = pixel_values;
  for (int64_t i = 0; i < max_tokens; ++i) {
    input.input_ids = prompt_tensor(ids, model.device());
    const int64_t next = last_logits(model.forward(input)).argmax().item<int64_t>();
    if (is_stop_token(next, stop_ids)) break;
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

}  // namespace l4::generate
