#include "parallel/rank_rng.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/error.h"

namespace l4::parallel {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Draws on the CPU in float32 so the values do not depend on the target device or dtype.
void fill_from(at::Tensor target, uint64_t seed, const InitFn& init) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor values = at::empty(target.sizes(), at::TensorOptions().dtype(at::kFloat));
  init(values, generator);
  at::NoGradGuard no_grad;
  target.copy_(values);
}

}  // namespace

uint64_t param_seed(uint64_t seed, std::string_view name, int64_t expert) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  uint64_t mixed = splitmix64(seed ^ splitmix64(h));
  if (expert >= 0) mixed = splitmix64(mixed ^ splitmix64(static_cast<uint64_t>(expert) + 1));
  return mixed;
}

InitFn normal_init(double std, double mean) {
  return [std, mean](at::Tensor& out, at::Generator& generator) { out.normal_(mean, std, generator); };
}

void init_replicated(at::Tensor& param, uint64_t seed, std::string_view name, const InitFn& init) {
  fill_from(param, param_seed(seed, name), init);
}

void init_experts(at::Tensor& param, int64_t expert_begin, uint64_t seed, std::string_view name,
                  const InitFn& init) {
  L4_CHECK(param.dim() >= 1 && expert_begin >= 0, "init_experts('{}'): expected [experts, ...] and a first expert >= 0",
           name);
  for (int64_t j = 0; j < param.size(0); ++j) fill_from(param[j], param_seed(seed, name, expert_begin + j), init);
}

}  // namespace l4::parallel
