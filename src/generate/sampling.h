// Choosing the next token from a row of logits: greedy (temperature 0) or sampled with temperature and
// nucleus (top-p) filtering from a seeded generator.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace l4::generate {

struct SamplingOptions {
  int64_t max_tokens = 128;
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // <|eot|>, eos
};

// l4::Error for out-of-range settings, naming the flag.
void check_sampling(const SamplingOptions& options);

// The next token from logits [V] (float, CPU).
int64_t pick_token(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

bool is_stop_token(int64_t id, const std::vector<int64_t>& stop_ids);

}  // namespace l4::generate
