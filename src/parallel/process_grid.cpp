#include "parallel/process_grid.h"

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

}  // namespace l4::parallel
