#include <gtest/gtest.h>

#include <cmath>

#include "train/lr_schedule.h"

namespace l4::train {
namespace {

config::ScheduleSection schedule(int64_t warmup, config::Decay decay, double min_ratio) {
  config::ScheduleSection s;
  s.warmup_steps = warmup;
  s.decay = decay;
  s.min_lr_ratio = min_ratio;
  return s;
}

TEST(LrScheduleTest, WarmupIsLinearFromOneStep) {
  const auto s = schedule(4, config::Decay::kConstant, 0.1);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 0, 100), 0.25);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 3, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 50, 100), 1.0);
}

TEST(LrScheduleTest, CosineGoesFromOneToMinRatio) {
  const auto s = schedule(10, config::Decay::kCosine, 0.1);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 10, 110), 1.0);
  // Halfway through the decay the cosine is at its midpoint: 0.1 + 0.9 * 0.5.
  EXPECT_NEAR(lr_multiplier(s, 60, 110), 0.55, 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 110, 110), 0.1, 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 500, 110), 0.1, 1e-12);  // clamped after the end
  EXPECT_NEAR(lr_multiplier(s, 35, 110), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
}

TEST(LrScheduleTest, LinearDecay) {
  const auto s = schedule(0, config::Decay::kLinear, 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 0, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 5, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 10, 10), 0.0);
}

}  // namespace
}  // namespace l4::train

#include "train/flops.h"

namespace l4::train {
namespace {

TEST(FlopsTest, AttendedKeysForCausalAndChunkedRows) {
  EXPECT_DOUBLE_EQ(mean_attended_keys(4, 0), 2.5);  // (1+2+3+4)/4
  EXPECT_DOUBLE_EQ(mean_attended_keys(4, 2), 1.5);  // (1+2+1+2)/4
  EXPECT_DOUBLE_EQ(mean_attended_keys(5, 2), 1.4);  // (1+2+1+2+1)/5
  EXPECT_DOUBLE_EQ(mean_attended_keys(3, 8), 2.0);  // chunk longer than the row
}

TEST(FlopsTest, DenseModelIsSixTimesParamsPlusAttention) {
  config::ModelArch arch;
  config::TextConfig& t = arch.text_config;
  t.vocab_size = 10;
  t.hidden_size = 8;
  t.num_hidden_layers = 1;
  t.num_attention_heads = 2;
  t.num_key_value_heads = 2;
  t.head_dim = 4;
  t.intermediate_size_mlp = 16;
  t.interleave_moe_layer_step = 0;  // no MoE layers
  t.no_rope_layer_interval = 1;     // the one layer is NoPE: full causal attention
  t.resolve();
  // Matmul params: q,k,v,o 4*8*8, mlp 3*8*16, lm_head 10*8, norms 3*8 (counted).
  const double params = 4 * 64 + 3 * 128 + 80 + 24;
  const double attention = 4.0 * 8 * mean_attended_keys(6, 0);
  EXPECT_DOUBLE_EQ(training_flops_per_token(arch, 6), 6 * params + 3 * attention);
}

}  // namespace
}  // namespace l4::train
