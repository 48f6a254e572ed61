// Llama 4 mixture of experts: bias-free router, top-k over the logits, sigmoid of the chosen logits scales
// the expert INPUT, shared expert always on. Experts are stored as HF stores them (gate_up_proj [E, D, 2F],
// input-major, gate columns first; down_proj [E, F, D]) but computed sparsely: the (token, slot) pairs are
// sorted by expert and each expert multiplies only its contiguous rows. No dense all-experts compute and no
// token dropping.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "config/model_arch.h"
#include "model/layers.h"
#include "model/placed.h"

namespace l4::model {

// The local expert computation: rows [R, D] sorted by expert, rows_per_expert[e] consecutive rows for expert
// e of gate_up_proj [E, D, 2F] / down_proj [E, F, D]; returns [R, D]. Expert parallelism plugs in around
// this seam (exchange rows, run the owned experts here, exchange back).
at::Tensor run_experts(const at::Tensor& rows_sorted_by_expert, const std::vector<int64_t>& rows_per_expert,
                       const at::Tensor& gate_up_proj, const at::Tensor& down_proj);

// Signature of run_experts; a MoE layer calls whichever runner it is given (expert parallelism swaps in one
// that exchanges rows between ranks around the local computation).
using ExpertRunner = std::function<at::Tensor(const at::Tensor& rows_sorted_by_expert,
                                              const std::vector<int64_t>& rows_per_expert,
                                              const at::Tensor& gate_up_proj, const at::Tensor& down_proj)>;

// Router load-balancing terms; both off (0) by default.
struct RouterLossOptions {
  double aux_loss_coef = 0.0;  // switch-style: E * sum_e f_e * P_e
  double z_loss_coef = 0.0;    // mean over tokens of logsumexp(logits)^2
};

// The routed experts a model instance holds: [begin, begin + count) of the config's num_local_experts
// (expert parallelism gives each rank a slice; count 0 = all). The router always scores every expert.
struct ExpertShard {
  int64_t begin = 0;
  int64_t count = 0;
};

// The routed experts [shard.begin, shard.begin + held) of `total` experts: both tensors are sharded along
// dim 0 over the expert-parallel group.
class ExpertsImpl : public torch::nn::Module, public PlacedModule {
 public:
  ExpertsImpl(int64_t first, int64_t held, int64_t total, int64_t hidden, int64_t intermediate,
              const at::TensorOptions& options);
  parallel::Placement placement() const override;
  int64_t first_expert() const { return first_; }
  int64_t total_experts() const { return total_; }

  at::Tensor gate_up_proj;  // [held, D, 2F]
  at::Tensor down_proj;     // [held, F, D]

 private:
  int64_t first_, total_;
};
TORCH_MODULE(Experts);

class MoeImpl : public torch::nn::Module {
 public:
  MoeImpl(const config::TextConfig& config, const at::TensorOptions& options, const ExpertShard& shard = {});
  // x [..., D] -> [..., D]. Records token counts and (when enabled) the router loss of this call.
  at::Tensor forward(const at::Tensor& x);

  Experts experts{nullptr};
  Linear router{nullptr};
  Mlp shared_expert{nullptr};

  int64_t num_experts() const { return num_experts_; }
  int64_t top_k() const { return top_k_; }

  RouterLossOptions loss_options;
  // Gets the rows of all routed experts (counts per global expert) and this layer's expert shard.
  ExpertRunner expert_runner = run_experts;
  at::Tensor last_expert_counts;  // int64 [E]: (token, slot) pairs routed to each expert by the last call
  at::Tensor last_router_loss;    // float32 scalar, weighted by the coefficients; undefined when both are 0

 private:
  int64_t num_experts_, top_k_;
};
TORCH_MODULE(Moe);

// The dense reference (every expert on every token, unselected inputs zeroed), as HF computes it; for tests.
at::Tensor moe_dense_reference(MoeImpl& moe, const at::Tensor& x);

}  // namespace l4::model
