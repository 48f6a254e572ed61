// ExpertDispatch on one rank (SelfCommunicator: no exchange) against the mask-based reference, the
// rank-independent initialisation, and MPI singleton start-up.
#include <gtest/gtest.h>

#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/expert_dispatch.h"
#include "parallel/mpi_runtime.h"
#include "unit/parallel/moe_reference.h"

namespace l4::parallel {
namespace {

using testing::ExpertWeights;

TEST(LocalDispatch, MatchesReferenceForwardAndBackward) {
  torch::manual_seed(1);
  const int64_t n = 23, d = 6, h = 10, e = 4;
  SelfCommunicator self;
  ExpertDispatch dispatch(self, e);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 5 + i / 3) % e);
  ids[4] = 0;
  const at::Tensor x0 = torch::randn({n, d});
  const at::Tensor probe = torch::randn({n, d});

  ExpertWeights w = testing::make_expert_weights(0, e, d, h, 7, true);
  at::Tensor x = x0.clone().requires_grad_();
  const at::Tensor out = dispatch(x, torch::tensor(ids), [&](const at::Tensor& rows, const std::vector<int64_t>& c) {
    return testing::run_experts(rows, c, w);
  });
  (out * probe).sum().backward();

  ExpertWeights rw = testing::make_expert_weights(0, e, d, h, 7, true);
  at::Tensor rx = x0.clone().requires_grad_();
  const at::Tensor ref = testing::reference_moe(rx, ids, rw, std::vector<bool>(n, true));
  (ref * probe).sum().backward();

  EXPECT_LE(testing::max_abs_diff(out, ref), 1e-6);
  EXPECT_LE(testing::max_abs_diff(x.grad(), rx.grad()), 1e-6);
  EXPECT_LE(testing::max_abs_diff(w.w1.grad(), rw.w1.grad()), 1e-6);
  EXPECT_LE(testing::max_abs_diff(w.w2.grad(), rw.w2.grad()), 1e-6);
  EXPECT_EQ(dispatch.last_stats().dropped, 0);
}

TEST(LocalDispatch, CapacityDropsAreZeroAndCounted) {
  torch::manual_seed(2);
  const int64_t n = 16, d = 4, h = 8, e = 4;
  SelfCommunicator self;
  ExpertDispatch dispatch(self, e, DispatchOptions{1.0});
  std::vector<int64_t> ids(n, 1);  // everything to expert 1: capacity 4 keeps rows 0..3
  ids[5] = 2;
  const at::Tensor x = torch::randn({n, d});
  ExpertWeights w = testing::make_expert_weights(0, e, d, h, 3, false);
  auto fn = [&](const at::Tensor& rows, const std::vector<int64_t>& c) { return testing::run_experts(rows, c, w); };
  const at::Tensor out = dispatch(x, torch::tensor(ids), fn);
  const std::vector<bool> kept = testing::reference_kept(ids, e, 1.0);
  const int64_t expected_dropped = std::count(kept.begin(), kept.end(), false);
  EXPECT_EQ(expected_dropped, 11);
  EXPECT_EQ(dispatch.last_stats().dropped, expected_dropped);
  EXPECT_DOUBLE_EQ(dispatch.last_stats().drop_rate(), 11.0 / 16.0);
  EXPECT_LE(testing::max_abs_diff(out, testing::reference_moe(x, ids, w, kept)), 1e-6);
  EXPECT_TRUE(torch::equal(out, dispatch(x, torch::tensor(ids), fn)));  // deterministic
}

TEST(LocalDispatch, RejectsBadShapes) {
  SelfCommunicator self;
  ExpertDispatch dispatch(self, 2);
  auto fn = [](const at::Tensor& rows, const std::vector<int64_t>&) { return rows; };
  EXPECT_THROW(dispatch(torch::zeros({3, 2}), torch::tensor({0, 1}), fn), l4::Error);
  EXPECT_THROW(dispatch(torch::zeros({2, 2}), torch::tensor({0, 2}), fn), l4::Error);
  auto bad = [](const at::Tensor& rows, const std::vector<int64_t>&) { return rows.narrow(0, 0, 1); };
  EXPECT_THROW(dispatch(torch::zeros({2, 2}), torch::tensor({0, 1}), bad), l4::Error);
}

TEST(RankRng, ExpertShardsEqualSlicesOfTheFullInit) {
  const ExpertWeights full = testing::make_expert_weights(0, 8, 3, 5, 42, false);
  const ExpertWeights shard = testing::make_expert_weights(2, 4, 3, 5, 42, false);
  EXPECT_TRUE(torch::equal(shard.w1, full.w1.narrow(0, 2, 4)));
  EXPECT_TRUE(torch::equal(shard.w2, full.w2.narrow(0, 2, 4)));
  EXPECT_FALSE(torch::equal(full.w1[0], full.w1[1]));
  EXPECT_FALSE(torch::equal(full.w1, full.w3));  // the name enters the seed
  EXPECT_NEAR(full.w1.std().item<double>(), 0.3, 0.1);
}

TEST(RankRng, ReplicatedInitIgnoresOrderAndDevice) {
  at::Tensor a = torch::empty({4, 4});
  at::Tensor b = torch::empty({4, 4}, torch::kDouble);
  at::Tensor other = torch::empty({4, 4});
  init_replicated(other, 9, "layers.0.other", normal_init(1.0));
  init_replicated(a, 9, "layers.0.q_proj.weight", normal_init(1.0));
  init_replicated(b, 9, "layers.0.q_proj.weight", normal_init(1.0));
  EXPECT_TRUE(torch::equal(a, b.to(torch::kFloat)));
  EXPECT_FALSE(torch::equal(a, other));
  EXPECT_NE(param_seed(1, "x"), param_seed(2, "x"));
  EXPECT_NE(param_seed(1, "x", 0), param_seed(1, "x", 1));
}

TEST(MpiRuntime, SingletonWithoutLauncher) {
  MpiRuntime& runtime = init_distributed();
  EXPECT_EQ(&runtime, &init_distributed());
  EXPECT_GE(runtime.size(), 1);
  at::Tensor t = torch::tensor({1.5f, 2.0f});
  runtime.world().all_reduce(t, ReduceOp::kSum);
  EXPECT_FLOAT_EQ(t[0].item<float>(), 1.5f * runtime.size());
  runtime.world().barrier();
}

}  // namespace
}  // namespace l4::parallel
