// Index arithmetic of expert dispatch, without tensors or communication (unit-testable).
#pragma once

#include <cstdint>
#include <vector>

namespace l4::parallel {

// Rows per expert one rank may send when dropping: ceil(capacity_factor * rows / num_experts), computed
// from this rank's rows (as Switch/GShard do per device). capacity_factor <= 0 means no limit.
int64_t expert_capacity(int64_t rows, int64_t num_experts, double capacity_factor);

// What one rank sends. Rows are ordered by destination expert (stable: original order inside an
// expert), so each destination EP rank's rows are one contiguous run.
struct SendPlan {
  std::vector<int64_t> order;              // kept rows in send order: order[i] = original row index
  std::vector<int64_t> rows_per_expert;    // [num_experts] kept rows per global expert
  std::vector<int64_t> rows_per_rank;      // [ep] rows sent to each EP rank
  int64_t dropped = 0;                     // rows over capacity (the last ones of each expert by row order)
};

// expert_ids[i] in [0, num_experts) is the destination of row i. Throws l4::Error on an out-of-range id.
SendPlan plan_send(const int64_t* expert_ids, int64_t rows, int64_t num_experts, int ep, double capacity_factor);

// What one rank receives, from recv_counts[s * local_experts + j] = rows source rank s sends to this
// rank's local expert j. Received rows arrive grouped by source; experts want them grouped by expert.
struct ReceivePlan {
  std::vector<int64_t> rows_from_rank;         // [ep]
  std::vector<int64_t> rows_per_local_expert;  // [local_experts]
  // to_expert_major[k] = index in the received (source-major) buffer of row k of the expert-major layout.
  std::vector<int64_t> to_expert_major;
  // The inverse permutation: from_expert_major[i] = expert-major index of received row i.
  std::vector<int64_t> from_expert_major;
};

ReceivePlan plan_receive(const std::vector<int64_t>& recv_counts, int ep, int64_t local_experts);

}  // namespace l4::parallel
