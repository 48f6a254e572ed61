#include "parallel/process_grid.h"

#include "core/error.h"
#include "parallel/mpi_communicator.h"

namespace l4::parallel {
namespace {

void name_group(Communicator& comm, const char* name) {
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(&comm)) mpi->set_name(name);
}

}  // namespace

ProcessGrid::ProcessGrid(Communicator& world, int ep, int64_t num_experts)
    : ProcessGrid(world, nullptr, ep, num_experts) {}

ProcessGrid::ProcessGrid(Communicator& host, std::unique_ptr<Communicator> device_channel, int ep,
                         int64_t num_experts)
    : host_(host),
      device_(std::move(device_channel)),
      layout_(GridLayout::make(host.size(), host.rank(), ep, num_experts)) {
  L4_CHECK(device().size() == host.size() && device().rank() == host.rank(),
           "process grid: the device channel has rank {}/{}, the host channel {}/{}", device().rank(),
           device().size(), host.rank(), host.size());
  // Key = world rank keeps the world order inside each group.
  ep_ = device().split(layout_.ep_group(), layout_.rank);
  edp_ = device().split(layout_.ep_rank(), layout_.rank);
  name_group(*ep_, "ep");
  name_group(*edp_, "edp");
}

Communicator& ProcessGrid::shard_group(ShardGroup group) const {
  switch (group) {
    case ShardGroup::kExpertParallel:
      return *ep_;
  }
  L4_FAIL("unknown shard group");
}

Communicator& ProcessGrid::replica_group(const Placement& placement) const {
  if (!placement.is_sharded()) return device();
  switch (placement.group) {
    case ShardGroup::kExpertParallel:
      return *edp_;
  }
  L4_FAIL("unknown shard group");
}

bool ProcessGrid::first_replica(const Placement& placement) const {
  if (!placement.is_sharded()) return layout_.rank == 0;
  switch (placement.group) {
    case ShardGroup::kExpertParallel:
      return layout_.edp_rank() == 0;
  }
  return false;
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
