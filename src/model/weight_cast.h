// Compute-dtype copies of weights, made once per optimizer step instead of once per use.
//
// Under bf16 autocast every matmul casts its float32 weight to bf16. LibTorch's own autocast cache keeps
// such casts only for trainable leaves and only until the outermost autocast scope closes (each
// micro-batch, each recompute), and frozen weights (LoRA bases) are cast on every call. While a
// WeightCastScope is open, compute_weight() returns one cast per weight for all micro-batches and
// recomputes of the step. The trainer closes the scope before the optimizer updates the weights; an
// in-place change while the scope is open (version counter) also makes a fresh cast.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace l4::model {

// w in the autocast dtype when autocast is enabled for w's device and w is float32; otherwise w itself.
// The cast is differentiable (its gradient reaches w in float32).
at::Tensor compute_weight(const at::Tensor& w);

// w in dtype (w itself when it already has it), from the step's cache while a scope is open.
at::Tensor cast_weight(const at::Tensor& w, at::ScalarType dtype);

// Opens the step's cache (not nestable: one per optimizer step); destruction drops every cached copy.
class WeightCastScope {
 public:
  WeightCastScope();
  ~WeightCastScope();
  WeightCastScope(const WeightCastScope&) = delete;
  WeightCastScope& operator=(const WeightCastScope&) = delete;
};

// Number of casts cast_weight() has made since the process started (for tests: a cache hit makes none).
int64_t weight_casts_made();

}  // namespace l4::model
