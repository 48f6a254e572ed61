// Expert parallelism for the MoE layers: an ExpertRunner that sends each routed row to the rank of its
// expert's expert-parallel group (parallel::ExpertDispatch), runs that rank's expert shard on the rows it
// receives, and brings the results back. The model must hold the shard the dispatch assigns to this rank
// (ModelOptions::experts = {ep_rank * E / ep, E / ep}).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

#include "model/moe.h"
#include "parallel/expert_dispatch.h"

namespace l4::model {

class ExpertParallelRunner {
 public:
  // `ep_comm` (ProcessGrid::ep_comm()) must outlive this object and every backward through its outputs.
  ExpertParallelRunner(parallel::Communicator& ep_comm, int64_t num_experts,
                       parallel::DispatchOptions options = {});

  // The MoeImpl::expert_runner seam: rows sorted by global expert, rows_per_expert over all experts, and
  // this rank's expert tensors [E / ep, ...].
  // `local` computes this rank's experts on the rows it receives (the layer's own runner: plain
  // run_experts, or the LoRA-aware one).
  at::Tensor operator()(const at::Tensor& rows_sorted_by_expert, const std::vector<int64_t>& rows_per_expert,
                        const at::Tensor& gate_up_proj, const at::Tensor& down_proj,
                        const ExpertRunner& local = run_experts);

  // Rows routed by this rank and rows dropped for capacity, summed over calls since reset_stats().
  const parallel::DispatchStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 private:
  parallel::ExpertDispatch dispatch_;
  parallel::DispatchStats stats_;
};

// Installs a runner on every MoE layer of `model` (which must hold the matching expert shard) and returns it
// (for the drop statistics). The model keeps it alive. Each layer's current runner (e.g. LoRA's) becomes the
// local computation inside the exchange, so install this after LoRA.
class Llama4Impl;

std::shared_ptr<ExpertParallelRunner> install_expert_parallel(Llama4Impl& model,
                                                              parallel::Communicator& ep_comm,
                                                              parallel::DispatchOptions options = {});

}  // namespace l4::model
