// Rank-independent parameter initialisation, so that any (world, ep) layout starts from the weights a
// single process would create.
//
// Every tensor draws from its own CPU generator seeded by (seed, parameter name), and every expert of an
// expert tensor from its own generator seeded by (seed, name, global expert index). Values therefore do
// not depend on the rank, the world size, the order parameters are initialised in, or which experts a
// rank holds: rank r's shard [e0, e1) equals rows [e0, e1) of the single-process tensor. (Generating the
// full [E, ...] tensor and slicing would also work at test sizes, but costs every rank the memory of all
// experts; per-expert seeding scales to Scout/Maverick.) The model must use these helpers in single-
// process runs too.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string_view>

namespace l4::parallel {

// 64-bit seed for (seed, name[, expert]): FNV-1a over the name, mixed with splitmix64. expert < 0: none.
uint64_t param_seed(uint64_t seed, std::string_view name, int64_t expert = -1);

// Fills `out` (a contiguous CPU float tensor) from `generator`.
using InitFn = std::function<void(at::Tensor& out, at::Generator& generator)>;
InitFn normal_init(double std, double mean = 0.0);

// Fills `param` (any device/dtype) in place; the same values on every rank.
void init_replicated(at::Tensor& param, uint64_t seed, std::string_view name, const InitFn& init);
// `param` is [local_experts, ...]: slice j gets the values of global expert expert_begin + j.
void init_experts(at::Tensor& param, int64_t expert_begin, uint64_t seed, std::string_view name,
                  const InitFn& init);

}  // namespace l4::parallel
