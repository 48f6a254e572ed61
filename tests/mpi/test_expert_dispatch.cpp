// ExpertDispatch over the EP group against one process computing the same experts on the global batch:
// outputs, gradients of the rows and of the expert weights (summed over the EDP group) within 1e-5, for
// every ep the world allows, with uniform, skewed and one-sided routing, a rank without rows, and
// capacity dropping.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <numeric>

#include "mpi/mpi_test_util.h"
#include "parallel/expert_dispatch.h"
#include "parallel/process_grid.h"
#include "unit/parallel/moe_reference.h"

namespace l4::parallel {
namespace {

using testing::ExpertWeights;
using testing::world;

constexpr int64_t kExperts = 8, kDim = 6, kHidden = 10;
constexpr uint64_t kSeed = 1234;

enum class Routing { kUniform, kSkewed, kRankZeroKeepsLocal, kRankOneEmpty };

// The global batch (same on every rank): rows per rank and each row's expert.
struct Batch {
  std::vector<int64_t> rows_per_rank;
  std::vector<int64_t> ids;
  at::Tensor x, probe;
  int64_t offset(int rank) const {
    return std::accumulate(rows_per_rank.begin(), rows_per_rank.begin() + rank, int64_t{0});
  }
};

Batch make_batch(Routing routing, int world_size, int ep) {
  Batch b;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(99);
  for (int r = 0; r < world_size; ++r) b.rows_per_rank.push_back(routing == Routing::kRankOneEmpty && r == 1 ? 0 : 9 + r);
  const int64_t total = std::accumulate(b.rows_per_rank.begin(), b.rows_per_rank.end(), int64_t{0});
  b.x = at::randn({total, kDim}, gen);
  b.probe = at::randn({total, kDim}, gen);
  const at::Tensor u = at::randint(0, kExperts, {total}, gen, at::kLong);
  for (int64_t i = 0; i < total; ++i) b.ids.push_back(u[i].item<int64_t>());
  if (routing == Routing::kSkewed) {
    for (int64_t i = 0; i < total; ++i) {
      if (i % 5 != 0) b.ids[i] = 0;  // expert 0 gets 80% of the rows
    }
  }
  if (routing == Routing::kRankZeroKeepsLocal) {
    // Rank 0 routes only to experts of EP rank 0, so it sends nothing to its EP peers.
    for (int64_t i = 0; i < b.rows_per_rank[0]; ++i) b.ids[i] %= kExperts / ep;
  }
  return b;
}

struct Result {
  at::Tensor out, x_grad, w1_grad, w2_grad, w3_grad;
  int64_t dropped = 0;
};

// One process, all rows, all experts; with capacity, each rank's rows drop independently (as on the
// ranks: capacity is per sending rank).
Result reference(const Batch& b, int world_size, double capacity_factor) {
  ExpertWeights w = testing::make_expert_weights(0, kExperts, kDim, kHidden, kSeed, true);
  at::Tensor x = b.x.clone().requires_grad_();
  std::vector<bool> kept;
  Result res;
  for (int r = 0; r < world_size; ++r) {
    const std::vector<int64_t> ids(b.ids.begin() + b.offset(r), b.ids.begin() + b.offset(r) + b.rows_per_rank[r]);
    const std::vector<bool> k = testing::reference_kept(ids, kExperts, capacity_factor);
    kept.insert(kept.end(), k.begin(), k.end());
  }
  res.dropped = std::count(kept.begin(), kept.end(), false);
  res.out = testing::reference_moe(x, b.ids, w, kept);
  (res.out * b.probe).sum().backward();
  res.x_grad = x.grad();
  res.w1_grad = w.w1.grad();
  res.w2_grad = w.w2.grad();
  res.w3_grad = w.w3.grad();
  return res;
}

struct Errors {
  double out = 0, x_grad = 0, w_grad = 0, init = 0;
};

Errors run_case(Routing routing, int ep, double capacity_factor, int64_t* dropped_global = nullptr) {
  Communicator& comm = world();
  const int r = comm.rank();
  ProcessGrid grid(comm, ep, kExperts);
  const Batch b = make_batch(routing, comm.size(), ep);
  const Result ref = reference(b, comm.size(), capacity_factor);

  const int64_t n = b.rows_per_rank[r], off = b.offset(r);
  ExpertWeights w =
      testing::make_expert_weights(grid.expert_begin(), grid.experts_per_rank(), kDim, kHidden, kSeed, true);
  ExpertWeights full = testing::make_expert_weights(0, kExperts, kDim, kHidden, kSeed, false);
  at::Tensor x = b.x.narrow(0, off, n).clone().requires_grad_();
  const std::vector<int64_t> ids(b.ids.begin() + off, b.ids.begin() + off + n);
  ExpertDispatch dispatch(grid.ep_comm(), kExperts, DispatchOptions{capacity_factor});
  auto local = [&](const at::Tensor& rows, const std::vector<int64_t>& counts) {
    return testing::run_experts(rows, counts, w);
  };
  const at::Tensor out = dispatch(x, torch::tensor(ids, torch::kLong), local);
  (out * b.probe.narrow(0, off, n)).sum().backward();
  // Expert gradients: each EP group saw its own ranks' rows; the EDP sum covers the whole batch.
  at::Tensor g1 = w.w1.grad().clone(), g2 = w.w2.grad().clone(), g3 = w.w3.grad().clone();
  grid.edp_comm().all_reduce(g1, ReduceOp::kSum);
  grid.edp_comm().all_reduce(g2, ReduceOp::kSum);
  grid.edp_comm().all_reduce(g3, ReduceOp::kSum);
  const DispatchStats global = sum_over_ranks(dispatch.last_stats(), comm);
  if (dropped_global != nullptr) *dropped_global = global.dropped;
  EXPECT_EQ(global.dropped, ref.dropped);
  EXPECT_EQ(global.rows, b.x.size(0));
  EXPECT_DOUBLE_EQ(global.drop_rate(), static_cast<double>(ref.dropped) / b.x.size(0));

  const int64_t e0 = grid.expert_begin(), el = grid.experts_per_rank();
  Errors err;
  err.out = testing::max_abs_diff(out, ref.out.narrow(0, off, n));
  err.x_grad = testing::max_abs_diff(x.grad(), ref.x_grad.narrow(0, off, n));
  err.w_grad = std::max({testing::max_abs_diff(g1, ref.w1_grad.narrow(0, e0, el)),
                         testing::max_abs_diff(g2, ref.w2_grad.narrow(0, e0, el)),
                         testing::max_abs_diff(g3, ref.w3_grad.narrow(0, e0, el))});
  err.init = std::max(testing::max_abs_diff(w.w1, grid.expert_shard(full.w1)),
                      testing::max_abs_diff(grid.gather_experts(w.w2.detach()), full.w2));
  // Agree on the worst error before anyone asserts.
  err.out = testing::max_over_ranks(err.out, comm);
  err.x_grad = testing::max_over_ranks(err.x_grad, comm);
  err.w_grad = testing::max_over_ranks(err.w_grad, comm);
  err.init = testing::max_over_ranks(err.init, comm);
  return err;
}

void expect_exact(const Errors& e, int ep, const char* what) {
  EXPECT_EQ(e.init, 0.0) << what << " ep=" << ep;
  EXPECT_LE(e.out, 1e-5) << what << " ep=" << ep;
  EXPECT_LE(e.x_grad, 1e-5) << what << " ep=" << ep;
  EXPECT_LE(e.w_grad, 1e-5) << what << " ep=" << ep;
  if (world().rank() == 0) {
    std::printf("[dispatch] %s ep=%d world=%d max-abs out %.2e x-grad %.2e w-grad %.2e\n", what, ep,
                world().size(), e.out, e.x_grad, e.w_grad);
  }
}

TEST(ExpertDispatch, UniformRouting) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) expect_exact(run_case(Routing::kUniform, ep, 0), ep, "uniform");
}

TEST(ExpertDispatch, SkewedRouting) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) expect_exact(run_case(Routing::kSkewed, ep, 0), ep, "skewed");
}

TEST(ExpertDispatch, RankSendsNothingToPeers) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) {
    expect_exact(run_case(Routing::kRankZeroKeepsLocal, ep, 0), ep, "one-sided");
  }
}

TEST(ExpertDispatch, RankWithoutRows) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) expect_exact(run_case(Routing::kRankOneEmpty, ep, 0), ep, "empty-rank");
}

TEST(ExpertDispatch, CapacityDropsMatchReferenceCount) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) {
    int64_t dropped = 0;
    expect_exact(run_case(Routing::kSkewed, ep, 1.0, &dropped), ep, "capacity-1.0");
    EXPECT_GT(dropped, 0);  // the skew must overflow expert 0
    int64_t again = 0;
    run_case(Routing::kSkewed, ep, 1.0, &again);
    EXPECT_EQ(dropped, again);
  }
}

}  // namespace
}  // namespace l4::parallel
