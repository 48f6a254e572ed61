// Cross-entropy through the output projection, a chunk of tokens at a time: the [tokens, vocab] logits
// (202,048 columns for Llama 4) never exist whole. When gradients are wanted, the forward pass computes
// them chunk by chunk from the logits it has just made, and the backward pass only scales them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "model/loss.h"

namespace l4::model {

// Sum of -log p(target) and the count of targets that are not kIgnoreIndex, with logits = hidden @ weight^T.
// hidden [..., D] (final-normed states), weight [V, D] (lm_head), targets [...] aligned with hidden
// (targets[t] is the token predicted at t). Logits are computed in the compute dtype (the autocast dtype when
// autocast is on for hidden's device, else hidden's dtype), log-softmax in float32. Differentiable in hidden
// and weight; chunks without a counted target are skipped. chunk_tokens must be positive.
LossSum chunked_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight,
                                  const at::Tensor& targets, int64_t chunk_tokens);

// Evaluation (no autograd): the same sum and count, and the greedy prediction argmax(logits) at each position
// (int64, shaped as targets; -1 where a chunk had no counted target, which no scorer reads).
struct ChunkedEval {
  LossSum loss;
  at::Tensor predictions;
  at::Tensor token_nll;  // float32 -log p(target) per position, shaped as targets (0 where not counted)
};
ChunkedEval chunked_cross_entropy_eval(const at::Tensor& hidden, const at::Tensor& weight,
                                       const at::Tensor& targets, int64_t chunk_tokens);

}  // namespace l4::model
