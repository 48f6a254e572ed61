#include <gtest/gtest.h>

#include <cmath>

#include "train/lr_schedule.h"

namespace l4::train {
namespace {

config::ScheduleSection schedule(int64_t warmup, const std::string& decay, double min_ratio) {
  config::ScheduleSection s;
  s.warmup_steps = warmup;
  s.decay = decay;
  s.min_lr_ratio = min_ratio;
  return s;
}

TEST(LrScheduleTest, WarmupIsLinearFromOneStep) {
  const auto s = schedule(4, "constant", 0.1);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 0, 100), 0.25);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 3, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 50, 100), 1.0);
}

TEST(LrScheduleTest, CosineGoesFromOneToMinRatio) {
  const auto s = schedule(10, "cosine", 0.1);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 10, 110), 1.0);
  // Halfway through the decay the cosine is at its midpoint: 0.1 + 0.9 * 0.5.
  EXPECT_NEAR(lr_multiplier(s, 60, 110), 0.55, 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 110, 110), 0.1, 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 500, 110), 0.1, 1e-12);  // clamped after the end
  EXPECT_NEAR(lr_multiplier(s, 35, 110), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
}

TEST(LrScheduleTest, LinearDecay) {
  const auto s = schedule(0, "linear", 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 0, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 5, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 10, 10), 0.0);
}

}  // namespace
}  // namespace l4::train
