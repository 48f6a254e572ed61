// ProcessGrid: the job's two channels and the expert-parallel (EP) and expert-data-parallel (EDP) groups of
// this rank (layout in grid_layout.h).
//   host():   the MPI world, always: control traffic in CPU tensors (stop agreement, loss totals, strings,
//             loader state, checkpoint coordination).
//   device(): the world for tensors on the training device (gradients, expert activations): the host
//             communicator itself on CPU runs, an NCCL communicator on GPU runs. The EP and EDP groups are
//             split from it.
// Every call site says which channel it means; NCCL rejects host tensors and MPI device tensors.
#pragma once

#include <memory>

#include "parallel/communicator.h"
#include "parallel/grid_layout.h"
#include "parallel/placement.h"

namespace l4::parallel {

class ProcessGrid {
 public:
  // Collective over both channels: validates the layout (same l4::Error on every rank, before any split)
  // and splits the EP and EDP groups from the device channel. `device` null: the host serves as the device
  // channel (CPU runs). `host` must outlive the grid.
  ProcessGrid(Communicator& host, std::unique_ptr<Communicator> device, int ep, int64_t num_experts);
  // CPU runs and tests: one communicator serves both channels.
  ProcessGrid(Communicator& world, int ep, int64_t num_experts);

  const GridLayout& layout() const { return layout_; }
  Communicator& host() const { return host_; }
  Communicator& device() const { return device_ ? *device_ : host_; }
  // Ranks r with the same r / ep (size ep), device channel: the experts' all-to-all runs here.
  Communicator& ep_comm() const { return *ep_; }
  // Ranks r with the same r % ep (size world / ep), device channel: expert gradients are reduced here.
  Communicator& edp_comm() const { return *edp_; }

  // The device-channel group a placement's shards are spread over (its pieces together are the tensor).
  Communicator& shard_group(ShardGroup group) const;
  // The device-channel group whose ranks hold equal copies of a tensor with this placement (gradients are
  // reduced over it): the world for replicated tensors, EDP for expert shards.
  Communicator& replica_group(const Placement& placement) const;
  // Whether this rank is the first of its replica group (the one that writes the tensor to a checkpoint).
  bool first_replica(const Placement& placement) const;

  int64_t expert_begin() const { return layout_.expert_begin(); }
  int64_t expert_end() const { return layout_.expert_end(); }
  int64_t experts_per_rank() const { return layout_.experts_per_rank(); }

  // This rank's rows [expert_begin, expert_end) of a full [E, ...] expert tensor (a view).
  at::Tensor expert_shard(const at::Tensor& full) const;
  // Collective over the EP group: the full [E, ...] tensor from every rank's [E/ep, ...] shard (e.g. to
  // compare an EP run's expert parameters with a single-process run, or to export them).
  at::Tensor gather_experts(const at::Tensor& shard) const;

 private:
  Communicator& host_;
  std::unique_ptr<Communicator> device_;
  GridLayout layout_;
  std::unique_ptr<Communicator> ep_;
  std::unique_ptr<Communicator> edp_;
};

}  // namespace l4::parallel
