// Choosing the next token from a row of logits: greedy (temperature 0, the default) or sampled from a seeded
// generator after the warpers transformers applies, in its order: temperature, top-k, top-p. Removed tokens
// get -inf, so the masks and the sampled ids equal HF's `generate(do_sample=True)` for the same seed.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace l4::generate {

struct SamplingOptions {
  int64_t max_new_tokens = 128;
  double temperature = 0.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off (transformers' generation_config defaults to 50; say it explicitly)
  double top_p = 1.0;        // 1: off
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // <|eot|>, eos
};

// l4::Error for out-of-range settings, naming the flag.
void check_sampling(const SamplingOptions& options);

// Logits [..., V] after temperature, top-k and top-p (float32; removed tokens -inf), computed with the same
// operations as transformers' TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper.
at::Tensor warp_logits(const at::Tensor& logits, const SamplingOptions& options);

// The next token from logits [V] (float, CPU).
int64_t pick_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

bool is_stop_token(int64_t id, const std::vector<int64_t>& stop_ids);

}  // namespace l4::generate
