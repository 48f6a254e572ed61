// Token-level cross-entropy in float32 with HF's ignore index -100.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace l4::model {

inline constexpr int64_t kIgnoreIndex = -100;

// Sum of -log p(target) over positions whose target is not kIgnoreIndex, and their count (int64 scalar);
// logits [..., V] and targets [...] are aligned (targets[t] is the token predicted at t). For token-weighted
// means across micro-batches and ranks.
struct LossSum {
  at::Tensor sum;    // float32 scalar
  at::Tensor count;  // int64 scalar
};
LossSum cross_entropy_sum(const at::Tensor& logits, const at::Tensor& targets);

// Masked mean of cross_entropy_sum (0 when nothing counts).
at::Tensor cross_entropy_mean(const at::Tensor& logits, const at::Tensor& targets);

// HF's causal-LM loss: labels [B, T] are the input ids (or -100); position t predicts labels[t + 1].
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace l4::model
