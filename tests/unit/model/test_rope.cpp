// RoPE frequencies (default and llama3 scaling) and the interleaved-pair rotation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "model/rope.h"

namespace l4::model {
namespace {

config::TextConfig scout_like() {
  config::TextConfig c;
  c.hidden_size = 5120;
  c.num_attention_heads = 40;
  c.head_dim = 128;
  c.rope_parameters = {"llama3", 500000.0, 16.0, 1.0, 1.0, 8192};
  return c;
}

TEST(Rope, DefaultFrequenciesAreThetaPowers) {
  config::TextConfig c = scout_like();
  c.rope_parameters.rope_type = "default";
  const at::Tensor f = rope_inv_freq(c);
  ASSERT_EQ(f.numel(), 64);
  for (int64_t j = 0; j < 64; ++j) {
    const double expected = std::pow(500000.0, -2.0 * j / 128.0);
    EXPECT_NEAR(f[j].item<double>() / expected, 1.0, 1e-6) << j;
  }
}

// Reference section 2.4: with 16/1/1/8192, wavelengths below 8192 are kept (j = 0..34), the rest / 16,
// no smooth band (transformers only warns about low == high).
TEST(Rope, ScoutLlama3ScalingKeepsShortWavelengthsAndDividesLongOnes) {
  config::TextConfig c = scout_like();
  const at::Tensor scaled = rope_inv_freq(c);
  c.rope_parameters.rope_type = "default";
  const at::Tensor base = rope_inv_freq(c);
  for (int64_t j = 0; j < 64; ++j) {
    const double expected = base[j].item<double>() / (j <= 34 ? 1.0 : 16.0);
    EXPECT_DOUBLE_EQ(scaled[j].item<double>(), static_cast<float>(expected)) << j;
  }
}

TEST(Rope, Llama3SmoothBandInterpolates) {
  config::TextConfig c = scout_like();
  c.rope_parameters = {"llama3", 500000.0, 8.0, 1.0, 4.0, 8192};  // Llama 3's values: a smooth band exists
  const at::Tensor scaled = rope_inv_freq(c);
  c.rope_parameters.rope_type = "default";
  const at::Tensor base = rope_inv_freq(c);
  int smooth = 0;
  for (int64_t j = 0; j < 64; ++j) {
    const double b = base[j].item<double>(), s = scaled[j].item<double>();
    const double wavelen = 2 * M_PI / b;
    if (wavelen < 8192.0 / 4) {
      EXPECT_NEAR(s, b, 1e-12 + 1e-6 * b);
    } else if (wavelen > 8192.0) {
      EXPECT_NEAR(s, b / 8, 1e-6 * b);
    } else {
      const double t = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(s, (1 - t) * b / 8 + t * b, 1e-5 * b);
      ++smooth;
    }
  }
  EXPECT_GT(smooth, 0);
}

TEST(Rope, UnknownRopeTypeIsAUserError) {
  config::TextConfig c = scout_like();
  c.rope_parameters.rope_type = "yarn";
  EXPECT_THROW(rope_inv_freq(c), l4::Error);
}

TEST(Rope, RotatesInterleavedPairsByPositionTimesTheta) {
  const at::Tensor inv_freq = torch::tensor({1.0f, 0.1f});
  const at::Tensor positions = torch::tensor({{0, 3}}, torch::kLong);
  const RopeTables tables = rope_tables(inv_freq, positions);
  // x [1, 2, 1, 4]: pairs (x0, x1) and (x2, x3).
  const at::Tensor x = torch::tensor({1.0f, 2.0f, -0.5f, 0.25f}).repeat({2}).view({1, 2, 1, 4});
  const at::Tensor y = apply_rope(x, tables);
  EXPECT_TRUE(torch::allclose(y[0][0], x[0][0]));  // position 0: identity
  for (int pair = 0; pair < 2; ++pair) {
    const double angle = 3 * (pair == 0 ? 1.0 : 0.1);
    const double a = x[0][1][0][2 * pair].item<double>(), b = x[0][1][0][2 * pair + 1].item<double>();
    EXPECT_NEAR(y[0][1][0][2 * pair].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-6);
    EXPECT_NEAR(y[0][1][0][2 * pair + 1].item<double>(), a * std::sin(angle) + b * std::cos(angle), 1e-6);
  }
}

}  // namespace
}  // namespace l4::model
