// Pure index logic of the parallel layer: grid ownership, dispatch permutations, gradient buckets.
#include <gtest/gtest.h>

#include <numeric>

#include "core/error.h"
#include "parallel/bucket_plan.h"
#include "parallel/dispatch_plan.h"
#include "parallel/grid_layout.h"

namespace l4::parallel {
namespace {

TEST(GridLayout, OwnershipAndGroups) {
  // 8 ranks, ep = 4, 16 experts: rank 6 is EP rank 2 of group 1 and owns experts [8, 12).
  const GridLayout g = GridLayout::make(8, 6, 4, 16);
  EXPECT_EQ(g.ep_rank(), 2);
  EXPECT_EQ(g.ep_group(), 1);
  EXPECT_EQ(g.experts_per_rank(), 4);
  EXPECT_EQ(g.expert_begin(), 8);
  EXPECT_EQ(g.expert_end(), 12);
  EXPECT_EQ(g.owner_ep_rank(13), 3);
  EXPECT_EQ(g.ep_group_ranks(), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(g.edp_group_ranks(), (std::vector<int>{2, 6}));
  EXPECT_EQ(g.edp_size(), 2);
  // Every expert is owned by exactly one rank of each EP group.
  std::vector<int> owners(16, 0);
  for (int r = 0; r < 4; ++r) {
    const GridLayout l = GridLayout::make(8, r, 4, 16);
    for (int64_t e = l.expert_begin(); e < l.expert_end(); ++e) ++owners[e];
  }
  EXPECT_EQ(std::count(owners.begin(), owners.end(), 1), 16);
}

TEST(GridLayout, PureDataParallelAndFullExpertParallel) {
  const GridLayout dp = GridLayout::make(4, 3, 1, 8);
  EXPECT_EQ(dp.expert_begin(), 0);
  EXPECT_EQ(dp.expert_end(), 8);
  EXPECT_EQ(dp.edp_group_ranks(), (std::vector<int>{0, 1, 2, 3}));
  const GridLayout ep = GridLayout::make(4, 3, 4, 8);
  EXPECT_EQ(ep.expert_begin(), 6);
  EXPECT_EQ(ep.edp_group_ranks(), (std::vector<int>{3}));
}

TEST(GridLayout, RejectsBadLayouts) {
  EXPECT_THROW(GridLayout::make(4, 0, 3, 6), l4::Error);   // ep does not divide the world
  EXPECT_THROW(GridLayout::make(4, 0, 4, 6), l4::Error);   // ep does not divide the experts
  EXPECT_THROW(GridLayout::make(4, 0, 0, 8), l4::Error);
  EXPECT_THROW(GridLayout::make(4, 4, 2, 8), l4::Error);   // rank out of range
  try {
    GridLayout::make(6, 0, 4, 8);
    FAIL() << "expected an error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert_parallel = 4 must divide the number of ranks (6)"),
              std::string::npos)
        << e.what();
  }
}

TEST(DispatchPlan, StableSortByExpertAndRankRuns) {
  const std::vector<int64_t> ids = {3, 0, 2, 0, 3, 1, 2, 3};
  const SendPlan p = plan_send(ids.data(), ids.size(), 4, 2, 0.0);
  EXPECT_EQ(p.order, (std::vector<int64_t>{1, 3, 5, 2, 6, 0, 4, 7}));
  EXPECT_EQ(p.rows_per_expert, (std::vector<int64_t>{2, 1, 2, 3}));
  EXPECT_EQ(p.rows_per_rank, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(p.dropped, 0);
}

TEST(DispatchPlan, CapacityKeepsFirstRowsPerExpert) {
  // 8 rows, 4 experts, factor 1 -> capacity 2: expert 3 keeps rows 0 and 4 and drops row 7.
  const std::vector<int64_t> ids = {3, 0, 2, 0, 3, 0, 2, 3};
  EXPECT_EQ(expert_capacity(8, 4, 1.0), 2);
  EXPECT_EQ(expert_capacity(9, 4, 1.0), 3);
  EXPECT_EQ(expert_capacity(8, 4, 1.25), 3);
  const SendPlan p = plan_send(ids.data(), ids.size(), 4, 1, 1.0);
  EXPECT_EQ(p.order, (std::vector<int64_t>{1, 3, 2, 6, 0, 4}));
  EXPECT_EQ(p.rows_per_expert, (std::vector<int64_t>{2, 0, 2, 2}));
  EXPECT_EQ(p.dropped, 2);
}

TEST(DispatchPlan, RejectsOutOfRangeExpert) {
  const std::vector<int64_t> ids = {0, 4};
  EXPECT_THROW(plan_send(ids.data(), ids.size(), 4, 1, 0.0), l4::Error);
}

TEST(DispatchPlan, ReceiveRegroupsSourceMajorToExpertMajor) {
  // 2 sources x 2 local experts: source 0 sends 1 row to expert 0 and 2 to expert 1, source 1 sends 2, 0.
  // Received buffer: [s0e0, s0e1, s0e1, s1e0, s1e0]; expert-major: [s0e0, s1e0, s1e0, s0e1, s0e1].
  const ReceivePlan p = plan_receive({1, 2, 2, 0}, 2, 2);
  EXPECT_EQ(p.rows_from_rank, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(p.rows_per_local_expert, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(p.to_expert_major, (std::vector<int64_t>{0, 3, 4, 1, 2}));
  for (size_t k = 0; k < p.to_expert_major.size(); ++k) EXPECT_EQ(p.from_expert_major[p.to_expert_major[k]], k);
}

TEST(BucketPlan, ReverseOrderSizeLimitAndKeys) {
  // Sizes in bytes; key 1 = expert params. Limit 100.
  const std::vector<BucketItem> items = {{40, 0}, {40, 0}, {30, 1}, {50, 0}, {200, 0}, {80, 1}};
  const std::vector<Bucket> buckets = plan_buckets(items, 100);
  // Walking 5..0: {4} closes when 3 arrives (200 + 50 > 100), {5} when 2 arrives (80 + 30), {3, 1} when 0
  // arrives; the open {0} (key 0) and {2} (key 1) follow by key.
  ASSERT_EQ(buckets.size(), 5u);
  EXPECT_EQ(buckets[0].items, (std::vector<size_t>{4}));
  EXPECT_EQ(buckets[1].items, (std::vector<size_t>{5}));
  EXPECT_EQ(buckets[2].items, (std::vector<size_t>{3, 1}));
  EXPECT_EQ(buckets[3].items, (std::vector<size_t>{0}));
  EXPECT_EQ(buckets[4].items, (std::vector<size_t>{2}));
  EXPECT_EQ(buckets[4].key, 1);
}

TEST(BucketPlan, EveryItemExactlyOnce) {
  std::vector<BucketItem> items;
  for (int i = 0; i < 37; ++i) items.push_back({(i * 7) % 23 + 1, i % 3});
  const auto buckets = plan_buckets(items, 40);
  std::vector<int> seen(items.size(), 0);
  for (const Bucket& b : buckets) {
    int64_t bytes = 0;
    for (size_t i : b.items) {
      ++seen[i];
      EXPECT_EQ(items[i].key, b.key);
      bytes += items[i].bytes;
    }
    EXPECT_EQ(bytes, b.bytes);
    EXPECT_TRUE(b.bytes <= 40 || b.items.size() == 1);
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 37);
}

}  // namespace
}  // namespace l4::parallel
