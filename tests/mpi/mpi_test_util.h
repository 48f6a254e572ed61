// Helpers for tests that run on every rank: collectives first, expectations after, so a failed check on
// one rank never skips a collective the others wait in.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "parallel/communicator.h"
#include "parallel/mpi_runtime.h"

namespace l4::parallel::testing {

inline Communicator& world() { return MpiRuntime::init().world(); }

// Expert-parallel sizes the world allows for `num_experts` experts.
inline std::vector<int> valid_eps(int world_size, int64_t num_experts) {
  std::vector<int> eps;
  for (int ep = 1; ep <= world_size; ++ep) {
    if (world_size % ep == 0 && num_experts % ep == 0) eps.push_back(ep);
  }
  return eps;
}

// Max over all ranks of a local value (e.g. an error).
inline double max_over_ranks(double value, Communicator& comm) {
  at::Tensor t = at::full({1}, value, at::kDouble);
  comm.all_reduce(t, ReduceOp::kMax);
  return t.item<double>();
}

}  // namespace l4::parallel::testing
