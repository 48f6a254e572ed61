// ProcessGrid: the world communicator plus the expert-parallel (EP) and expert-data-parallel (EDP)
// sub-communicators of this rank (layout in grid_layout.h).
#pragma once

#include <memory>

#include "parallel/communicator.h"
#include "parallel/grid_layout.h"

namespace l4::parallel {

class ProcessGrid {
 public:
  // Collective over `world`: validates the layout (same l4::Error on every rank, before any split) and
  // splits the EP and EDP communicators. `world` must outlive the grid.
  ProcessGrid(Communicator& world, int ep, int64_t num_experts);

  const GridLayout& layout() const { return layout_; }
  Communicator& world() const { return world_; }
  // Ranks r with the same r / ep (size ep): the experts' all-to-all runs here.
  Communicator& ep_comm() const { return *ep_; }
  // Ranks r with the same r % ep (size world / ep): expert gradients are reduced here.
  Communicator& edp_comm() const { return *edp_; }

  int64_t expert_begin() const { return layout_.expert_begin(); }
  int64_t expert_end() const { return layout_.expert_end(); }
  int64_t experts_per_rank() const { return layout_.experts_per_rank(); }

  // This rank's rows [expert_begin, expert_end) of a full [E, ...] expert tensor (a view).
  at::Tensor expert_shard(const at::Tensor& full) const;
  // Collective over the EP group: the full [E, ...] tensor from every rank's [E/ep, ...] shard (e.g. to
  // compare an EP run's expert parameters with a single-process run, or to export them).
  at::Tensor gather_experts(const at::Tensor& shard) const;

 private:
  Communicator& world_;
  GridLayout layout_;
  std::unique_ptr<Communicator> ep_;
  std::unique_ptr<Communicator> edp_;
};

}  // namespace l4::parallel
