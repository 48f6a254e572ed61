// ProcessGrid: the EP and EDP sub-communicators contain the ranks the layout says, and bad layouts fail
// on every rank with a clear error before any communicator is split.
#include <gtest/gtest.h>

#include "core/error.h"
#include "mpi/mpi_test_util.h"
#include "parallel/process_grid.h"

namespace l4::parallel {
namespace {

using testing::world;

std::vector<int> ranks_of(Communicator& sub) {
  const at::Tensor mine = torch::tensor({static_cast<int64_t>(world().rank())});
  const at::Tensor all = sub.all_gather(mine);
  return std::vector<int>(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
}

TEST(ProcessGrid, GroupsMatchLayout) {
  for (int ep : testing::valid_eps(world().size(), 8)) {
    ProcessGrid grid(world(), ep, 8);
    const std::vector<int> ep_ranks = ranks_of(grid.ep_comm());
    const std::vector<int> edp_ranks = ranks_of(grid.edp_comm());
    EXPECT_EQ(grid.ep_comm().size(), ep);
    EXPECT_EQ(grid.edp_comm().size(), world().size() / ep);
    EXPECT_EQ(grid.ep_comm().rank(), grid.layout().ep_rank());
    EXPECT_EQ(ep_ranks, grid.layout().ep_group_ranks()) << "ep=" << ep;
    EXPECT_EQ(edp_ranks, grid.layout().edp_group_ranks()) << "ep=" << ep;
    EXPECT_EQ(grid.expert_begin(), (world().rank() % ep) * (8 / ep));
    EXPECT_EQ(grid.experts_per_rank(), 8 / ep);
  }
}

TEST(ProcessGrid, InvalidLayoutsThrowOnEveryRank) {
  const int w = world().size();
  EXPECT_THROW(ProcessGrid(world(), w + 1, 8 * (w + 1)), l4::Error);  // ep does not divide the world
  EXPECT_THROW(ProcessGrid(world(), w, 8 * w + 1), l4::Error);        // ep does not divide the experts
  world().barrier();  // still in step: nothing was split
}

}  // namespace
}  // namespace l4::parallel
