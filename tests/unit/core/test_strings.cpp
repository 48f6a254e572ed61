#include <gtest/gtest.h>

#include "core/error.h"
#include "core/strings.h"

namespace l4 {
namespace {

TEST(EditDistanceTest, CountsSwapsDropsAndInserts) {
  EXPECT_EQ(edit_distance("optimizer", "optimizer"), 0);
  EXPECT_EQ(edit_distance("optimzer", "optimizer"), 1);  // dropped letter
  EXPECT_EQ(edit_distance("optmiizer", "optimizer"), 1);  // adjacent swap
  EXPECT_EQ(edit_distance("", "abc"), 3);
}

TEST(ClosestMatchTest, SuggestsOnlyPlausibleTypos) {
  const std::vector<std::string> keys = {"optimizer", "schedule", "train", "model"};
  EXPECT_EQ(closest_match("optimzer", keys), "optimizer");
  EXPECT_EQ(closest_match("trian", keys), "train");
  EXPECT_EQ(closest_match("completely_different", keys), "");
  EXPECT_EQ(did_you_mean("schedul", keys), " (did you mean 'schedule'?)");
  EXPECT_EQ(closest_match("num_heads", {"num_attention_heads", "num_hidden_layers", "head_dim"}),
            "num_attention_heads");
}

TEST(GlobMatchTest, StarCrossesDots) {
  EXPECT_TRUE(glob_match("*.router.*", "model.layers.1.feed_forward.router.weight"));
  EXPECT_TRUE(glob_match("*norm*", "model.layers.0.input_layernorm.weight"));
  EXPECT_FALSE(glob_match("*.router.*", "model.layers.1.feed_forward.experts.gate_up_proj"));
  EXPECT_TRUE(glob_match("lm_head.?eight", "lm_head.weight"));
  EXPECT_FALSE(glob_match("lm_head", "lm_head.weight"));
}

TEST(SplitJoinTest, RoundTrips) {
  EXPECT_EQ(split("a.b.c", '.'), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split("", '.'), (std::vector<std::string>{""}));
  EXPECT_EQ(join({"a", "b"}, ", "), "a, b");
}

TEST(ErrorTest, CheckThrowsUserErrorAssertThrowsInternal) {
  EXPECT_THROW(L4_CHECK(1 == 2, "bad {}", 1), Error);
  EXPECT_THROW(L4_ASSERT(1 == 2, "bug"), InternalError);
  try {
    L4_CHECK(false, "{}: line {}", "file.yaml", 3);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "file.yaml: line 3");
  }
}

}  // namespace
}  // namespace l4
