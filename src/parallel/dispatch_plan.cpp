#include "parallel/dispatch_plan.h"

#include <cmath>

#include "core/error.h"

namespace l4::parallel {

int64_t expert_capacity(int64_t rows, int64_t num_experts, double capacity_factor) {
  if (capacity_factor <= 0) return rows;
  return static_cast<int64_t>(std::ceil(capacity_factor * static_cast<double>(rows) / num_experts));
}

SendPlan plan_send(const int64_t* expert_ids, int64_t rows, int64_t num_experts, int ep, double capacity_factor) {
  L4_CHECK(num_experts >= 1 && ep >= 1 && num_experts % ep == 0,
           "expert dispatch: {} experts cannot be split over {} expert-parallel ranks", num_experts, ep);
  SendPlan plan;
  plan.rows_per_expert.assign(num_experts, 0);
  // Counting sort by expert: stable, O(rows + experts).
  std::vector<int64_t> count(num_experts, 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t e = expert_ids[i];
    L4_CHECK(e >= 0 && e < num_experts, "expert dispatch: row {} routed to expert {}, expected [0, {})", i, e,
             num_experts);
    ++count[e];
  }
  const int64_t capacity = expert_capacity(rows, num_experts, capacity_factor);
  std::vector<int64_t> offset(num_experts, 0);
  int64_t kept = 0;
  for (int64_t e = 0; e < num_experts; ++e) {
    plan.rows_per_expert[e] = std::min(count[e], capacity);
    offset[e] = kept;
    kept += plan.rows_per_expert[e];
  }
  plan.dropped = rows - kept;
  plan.order.assign(kept, 0);
  std::vector<int64_t> filled(num_experts, 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t e = expert_ids[i];
    if (filled[e] == plan.rows_per_expert[e]) continue;  // over capacity: dropped
    plan.order[offset[e] + filled[e]++] = i;
  }
  const int64_t per_rank = num_experts / ep;
  plan.rows_per_rank.assign(ep, 0);
  for (int64_t e = 0; e < num_experts; ++e) plan.rows_per_rank[e / per_rank] += plan.rows_per_expert[e];
  return plan;
}

ReceivePlan plan_receive(const std::vector<int64_t>& recv_counts, int ep, int64_t local_experts) {
  L4_ASSERT(static_cast<int64_t>(recv_counts.size()) == ep * local_experts, "{} counts for {} x {}",
            recv_counts.size(), ep, local_experts);
  ReceivePlan plan;
  plan.rows_from_rank.assign(ep, 0);
  plan.rows_per_local_expert.assign(local_experts, 0);
  // Start of each (source, expert) block in the received buffer.
  std::vector<int64_t> block_start(recv_counts.size(), 0);
  int64_t total = 0;
  for (int s = 0; s < ep; ++s) {
    for (int64_t j = 0; j < local_experts; ++j) {
      const int64_t c = recv_counts[s * local_experts + j];
      L4_CHECK(c >= 0, "expert dispatch: negative row count {} received from rank {}", c, s);
      block_start[s * local_experts + j] = total;
      total += c;
      plan.rows_from_rank[s] += c;
      plan.rows_per_local_expert[j] += c;
    }
  }
  plan.to_expert_major.reserve(total);
  for (int64_t j = 0; j < local_experts; ++j) {
    for (int s = 0; s < ep; ++s) {
      const int64_t start = block_start[s * local_experts + j];
      for (int64_t k = 0; k < recv_counts[s * local_experts + j]; ++k) plan.to_expert_major.push_back(start + k);
    }
  }
  plan.from_expert_major.assign(total, 0);
  for (int64_t k = 0; k < total; ++k) plan.from_expert_major[plan.to_expert_major[k]] = k;
  return plan;
}

}  // namespace l4::parallel
