// Packing plans: every token of every document placed exactly once per epoch, rows never longer than
// seq_len, short documents never split, images never cut, deterministic per (seed, epoch).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>

#include "core/error.h"
#include "data/packing.h"

namespace l4::data {
namespace {

DocIndex random_index(int docs, int max_len, bool images, uint32_t seed) {
  std::mt19937 rng(seed);
  DocIndex index;
  for (int d = 0; d < docs; ++d) {
    const uint64_t len = std::uniform_int_distribution<uint64_t>(1, max_len)(rng);
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    if (images) {
      for (uint64_t at = 2; at + 8 <= len; at += 13) spans.emplace_back(at, at + 8);
    }
    index.add(len, spans);
  }
  return index;
}

// Checks the invariants and returns, per document, how often each token was placed.
void check_plan(const DocIndex& index, const EpochPlan& plan, const PackingOptions& opt) {
  std::vector<std::vector<int>> seen(index.size());
  for (uint64_t d = 0; d < index.size(); ++d) seen[d].assign(index.lengths[d], 0);
  for (uint64_t r = 0; r < plan.num_rows(); ++r) {
    uint64_t used = 0;
    ASSERT_GT(plan.row_starts[r + 1], plan.row_starts[r]) << "empty row " << r;
    if (!opt.pack) {
      ASSERT_EQ(plan.row_starts[r + 1] - plan.row_starts[r], 1u);
    }
    for (uint64_t k = plan.row_starts[r]; k < plan.row_starts[r + 1]; ++k) {
      const Piece& p = plan.pieces[k];
      ASSERT_GT(p.length, 0u);
      used += p.length;
      if (index.lengths[p.doc] <= static_cast<uint64_t>(opt.seq_len)) {
        EXPECT_EQ(p.begin, 0u) << "short document split";
        EXPECT_EQ(p.length, index.lengths[p.doc]) << "short document split";
      }
      for (uint64_t s = index.image_offsets[p.doc]; s < index.image_offsets[p.doc + 1]; ++s) {
        const auto [b, e] = index.spans[s];
        const bool inside = b >= p.begin && e <= p.begin + p.length;
        const bool outside = e <= p.begin || b >= p.begin + p.length;
        EXPECT_TRUE(inside || outside) << "image cut";
      }
      for (uint64_t i = p.begin; i < p.begin + p.length; ++i) seen[p.doc][i] += 1;
    }
    EXPECT_LE(used, static_cast<uint64_t>(opt.seq_len));
  }
  for (uint64_t d = 0; d < index.size(); ++d) {
    for (uint64_t i = 0; i < index.lengths[d]; ++i) ASSERT_EQ(seen[d][i], 1) << "doc " << d << " token " << i;
  }
}

TEST(Packing, EveryTokenExactlyOncePacked) {
  const DocIndex index = random_index(200, 90, false, 1);
  const PackingOptions opt{32, true, true, 5};
  for (uint64_t epoch = 0; epoch < 3; ++epoch) check_plan(index, plan_epoch(index, opt, epoch), opt);
}

TEST(Packing, EveryTokenExactlyOnceUnpacked) {
  const DocIndex index = random_index(100, 90, false, 2);
  const PackingOptions opt{32, false, true, 5};
  check_plan(index, plan_epoch(index, opt, 0), opt);
}

TEST(Packing, ImagesAreNeverCut) {
  const DocIndex index = random_index(150, 120, true, 3);
  for (bool pack : {true, false}) {
    const PackingOptions opt{20, pack, true, 9};
    check_plan(index, plan_epoch(index, opt, 1), opt);
  }
}

TEST(Packing, ImageLongerThanARowIsAnError) {
  DocIndex index;
  index.add(40, {{5, 30}});
  const PackingOptions opt{16, true, false, 0};
  EXPECT_THROW(plan_epoch(index, opt, 0), l4::Error);
}

TEST(Packing, DeterministicPerSeedAndEpoch) {
  const DocIndex index = random_index(80, 40, false, 4);
  const PackingOptions opt{64, true, true, 11};
  const auto a = plan_epoch(index, opt, 2), b = plan_epoch(index, opt, 2), c = plan_epoch(index, opt, 3);
  ASSERT_EQ(a.pieces.size(), b.pieces.size());
  for (size_t i = 0; i < a.pieces.size(); ++i) EXPECT_EQ(a.pieces[i].doc, b.pieces[i].doc);
  bool differs = a.pieces.size() != c.pieces.size();
  for (size_t i = 0; !differs && i < a.pieces.size(); ++i) differs = a.pieces[i].doc != c.pieces[i].doc;
  EXPECT_TRUE(differs) << "epochs should be shuffled differently";
}

TEST(Packing, PermutationIsAPermutation) {
  const auto p = epoch_permutation(1000, 3, 0);
  std::vector<int> count(1000, 0);
  for (uint64_t v : p) count[v] += 1;
  for (int c : count) EXPECT_EQ(c, 1);
}

TEST(Packing, UnshuffledKeepsDatasetOrder) {
  const DocIndex index = random_index(30, 10, false, 5);
  const auto plan = plan_epoch(index, {64, true, false, 0}, 0);
  for (size_t i = 0; i < plan.pieces.size(); ++i) EXPECT_EQ(plan.pieces[i].doc, i);
}

TEST(Packing, OverlongDocumentsTruncatedOrDropped) {
  DocIndex index;
  index.add(5);
  index.add(25, {{8, 14}});  // truncation at 10 would cut the image [8, 14): it stops at 8
  index.add(30);
  index.add(10);
  PackingOptions opt;
  opt.seq_len = 10;
  opt.shuffle = false;
  opt.overlong = Overlong::truncate;
  EpochPlan plan = plan_epoch(index, opt, 0);
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, bool>> pieces;
  for (const Piece& p : plan.pieces) pieces.emplace_back(p.doc, p.begin, p.length, p.cut);
  const std::vector<std::tuple<uint64_t, uint64_t, uint64_t, bool>> truncated = {
      {0, 0, 5, false}, {1, 0, 8, true}, {2, 0, 10, true}, {3, 0, 10, false}};
  EXPECT_EQ(pieces, truncated);
  EXPECT_EQ(plan.num_rows(), 4u);  // 5 | 8 (the next does not fit beside it) | 10 | 10

  opt.overlong = Overlong::drop;
  plan = plan_epoch(index, opt, 0);
  ASSERT_EQ(plan.pieces.size(), 2u);
  EXPECT_EQ(plan.pieces[0].doc, 0u);
  EXPECT_EQ(plan.pieces[1].doc, 3u);
  EXPECT_EQ(plan.num_rows(), 2u);  // 5 + 10 do not share a row of 10
}

}  // namespace
}  // namespace l4::data
