#include "parallel/process_grid.h"

#include "core/error.h"
#include "parallel/mpi_communicator.h"

namespace l4::parallel {

ProcessGrid::ProcessGrid(Communicator& world, int ep, int64_t num_experts)
    : world_(world), layout_(GridLayout::make(world.size(), world.rank(), ep, num_experts)) {
  // Key = world rank keeps the world order inside each group.
  ep_ = world.split(layout_.ep_group(), layout_.rank);
  edp_ = world.split(layout_.ep_rank(), layout_.rank);
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(ep_.get())) mpi->set_name("ep");
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(edp_.get())) mpi->set_name("edp");
}

at::Tensor ProcessGrid::expert_shard(const at::Tensor& full) const {
  L4_CHECK(full.dim() >= 1 && full.size(0) == layout_.num_experts,
           "expert_shard: expected a tensor with {} experts in dim 0", layout_.num_experts);
  return full.narrow(0, expert_begin(), experts_per_rank());
}

at::Tensor ProcessGrid::gather_experts(const at::Tensor& shard) const {
  L4_CHECK(shard.dim() >= 1 && shard.size(0) == experts_per_rank(),
           "gather_experts: expected a shard with {} experts in dim 0", experts_per_rank());
  // EP rank i holds experts [i * E/ep, (i + 1) * E/ep): rank order is expert order.
  return ep_->all_gather(shard);
}

}  // namespace l4::parallel
