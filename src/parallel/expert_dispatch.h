// ExpertDispatch: sends routed rows to the EP rank owning their expert, runs the local experts on rows
// grouped contiguously by local expert, and brings the results back in the original row order.
//
//   rows x [N, D] (gate-scaled token slots), expert ids [N] (global)
//     -> stable sort by expert (drop over capacity if asked) -> exchange per-expert counts (all-to-all)
//     -> all-to-all-v rows -> regroup by local expert -> local_compute -> inverse regroup
//     -> all-to-all-v back -> un-permute (dropped rows are zero)            -> [N, D_out]
//
// Both row exchanges are autograd functions whose backward is the reverse exchange, so gradients reach
// x and every weight local_compute uses. Every rank of the EP communicator must call dispatch() the same
// number of times in the same order, and backward must run on all of them (it contains collectives);
// x must require grad on all ranks or on none. With an EP communicator of size 1 nothing is exchanged.
// Inside each local expert's slice, rows come in source-rank order, then in row order: the order a
// single process would see for the EP group's concatenated batch, so sums over rows match it.
//
// Typical use in an MoE layer (ProcessGrid grid; top-k slots flattened to rows, already gate-scaled):
//   ExpertDispatch dispatch(grid.ep_comm(), num_experts, {capacity_factor});
//   at::Tensor out = dispatch(rows, expert_ids, [&](const at::Tensor& r, const std::vector<int64_t>& c) {
//     return run_experts(r, c, gate_up_proj, down_proj);   // this rank's experts [e0, e0 + E/ep)
//   });
//   // out [N, D] in the original slot order -> sum the k slots of each token, add the shared expert.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace l4::parallel {

class Communicator;

struct DispatchOptions {
  // <= 0: dropless. Otherwise each rank sends at most ceil(capacity_factor * N / num_experts) rows per
  // expert, keeping the first ones in row order; dropped rows produce zeros (the residual carries them).
  double capacity_factor = 0.0;
};

struct DispatchStats {
  int64_t rows = 0;     // rows this rank routed in the last call
  int64_t dropped = 0;  // of which dropped for capacity
  double drop_rate() const { return rows > 0 ? static_cast<double>(dropped) / rows : 0.0; }
};

// Job-wide statistics: sums rows and drops of `local` over `comm` (collective; CPU tensors, so an MPI
// communicator such as the world).
DispatchStats sum_over_ranks(const DispatchStats& local, Communicator& comm);

// The local expert seam: rows [M, D] sorted by local expert, rows_per_local_expert[j] rows for local
// expert j (sums to M; zeros allowed) -> outputs [M, D_out] in the same order.
using LocalExpertFn =
    std::function<at::Tensor(const at::Tensor& rows, const std::vector<int64_t>& rows_per_local_expert)>;

class ExpertDispatch {
 public:
  // `ep_comm` (the EP group, e.g. ProcessGrid::ep_comm()) must outlive this object and every backward
  // through its outputs. num_experts = routed experts per layer, divisible by ep_comm.size().
  ExpertDispatch(Communicator& ep_comm, int64_t num_experts, DispatchOptions options = {});

  at::Tensor operator()(const at::Tensor& x, const at::Tensor& expert_ids, const LocalExpertFn& local_compute);

  const DispatchStats& last_stats() const { return stats_; }
  int64_t num_experts() const { return num_experts_; }
  int64_t local_experts() const;
  int64_t expert_begin() const;

 private:
  Communicator& comm_;
  int64_t num_experts_;
  DispatchOptions options_;
  DispatchStats stats_;
};

// Differentiable all-to-all-v: forward sends rows per send_counts; backward sends the gradient back.
at::Tensor all_to_all_v_autograd(const at::Tensor& x, const std::vector<int64_t>& send_counts,
                                 const std::vector<int64_t>& recv_counts, Communicator& comm);

}  // namespace l4::parallel
