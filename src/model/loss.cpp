#include "model/loss.h"

#include <torch/torch.h>

namespace l4::model {

LossSum cross_entropy_sum(const at::Tensor& logits, const at::Tensor& targets) {
  const at::Tensor flat_logits = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat);
  const at::Tensor flat_targets = targets.reshape({-1}).to(torch::kLong);
  const at::Tensor sum = at::cross_entropy_loss(flat_logits, flat_targets, /*weight=*/{}, at::Reduction::Sum,
                                                kIgnoreIndex);
  return {sum, (flat_targets != kIgnoreIndex).sum()};
}

at::Tensor cross_entropy_mean(const at::Tensor& logits, const at::Tensor& targets) {
  const LossSum loss = cross_entropy_sum(logits, targets);
  return loss.sum / loss.count.clamp_min(1).to(torch::kFloat);
}

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t t = labels.size(1);
  const at::Tensor shifted =
      at::constant_pad_nd(labels.narrow(1, 1, t - 1), {0, 1}, static_cast<double>(kIgnoreIndex));
  return cross_entropy_mean(logits, shifted);
}

}  // namespace l4::model
