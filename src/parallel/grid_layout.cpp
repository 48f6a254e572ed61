#include "parallel/grid_layout.h"

#include "core/error.h"

namespace l4::parallel {

GridLayout GridLayout::make(int world_size, int rank, int ep, int64_t num_experts) {
  L4_CHECK(world_size >= 1, "world size must be at least 1, got {}", world_size);
  L4_CHECK(rank >= 0 && rank < world_size, "rank {} out of range for world size {}", rank, world_size);
  L4_CHECK(ep >= 1, "parallel.expert_parallel must be at least 1, got {}", ep);
  L4_CHECK(world_size % ep == 0,
           "parallel.expert_parallel = {} must divide the number of ranks ({}); valid values here: divisors of {}",
           ep, world_size, world_size);
  L4_CHECK(num_experts >= 0, "number of experts must be non-negative, got {}", num_experts);
  L4_CHECK(num_experts == 0 || num_experts % ep == 0,
           "parallel.expert_parallel = {} must divide num_local_experts ({}) so every rank owns the same number "
           "of experts",
           ep, num_experts);
  GridLayout layout;
  layout.world_size = world_size;
  layout.rank = rank;
  layout.ep = ep;
  layout.num_experts = num_experts;
  return layout;
}

std::vector<int> GridLayout::ep_group_ranks() const {
  std::vector<int> ranks;
  for (int i = 0; i < ep; ++i) ranks.push_back(ep_group() * ep + i);
  return ranks;
}

std::vector<int> GridLayout::edp_group_ranks() const {
  std::vector<int> ranks;
  for (int g = 0; g < num_ep_groups(); ++g) ranks.push_back(g * ep + ep_rank());
  return ranks;
}

}  // namespace l4::parallel
