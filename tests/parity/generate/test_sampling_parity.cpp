// Sampling against transformers' logits warpers (data from sampling_oracle.py): for every case the removed
// tokens (-inf) are exactly HF's, the kept scores equal HF's, and tokens drawn from a generator seeded as
// HF's global one was are HF's tokens.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "core/file_io.h"
#include "generate/sampling.h"

namespace l4::generate {
namespace {

const std::string kData = std::string(L4_TEST_DATA_DIR) + "/sampling/";

TEST(SamplingParity, WarpersAndDrawsEqualTransformers) {
  const auto cases = nlohmann::json::parse(read_file(kData + "cases.json"));
  const auto file = checkpoint::SafetensorsFile::open(kData + "sampling.safetensors");
  const at::Tensor logits = file->load("logits");
  ASSERT_GE(cases.size(), 8u);
  int64_t masked_somewhere = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    SamplingOptions o;
    o.temperature = cases[i].at("temperature").get<double>();
    o.top_k = cases[i].at("top_k").get<int64_t>();
    o.top_p = cases[i].at("top_p").get<double>();
    const at::Tensor theirs = file->load(std::to_string(i) + ".warped");
    const at::Tensor ours = warp_logits(logits, o);
    SCOPED_TRACE("case " + std::to_string(i) + ": " + cases[i].dump());
    EXPECT_TRUE(torch::equal(ours.isinf(), theirs.isinf()));
    const at::Tensor kept = theirs.isfinite();
    EXPECT_LE((ours.masked_select(kept) - theirs.masked_select(kept)).abs().max().item<double>(), 1e-6);
    masked_somewhere += theirs.isinf().sum().item<int64_t>();

    const at::Tensor draws = file->load(std::to_string(i) + ".draws");
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(cases[i].at("seed").get<uint64_t>());
    for (int64_t r = 0; r < logits.size(0); ++r) {
      for (int64_t d = 0; d < draws.size(1); ++d) {
        EXPECT_EQ(pick_token(logits[r], o, gen), draws[r][d].item<int64_t>()) << "row " << r << " draw " << d;
      }
    }
  }
  EXPECT_GT(masked_somewhere, 0);  // the cases do filter
}

TEST(SamplingParity, GreedyIsArgmaxAndBadSettingsNameTheFlag) {
  const at::Tensor logits = torch::tensor({0.5f, 3.0f, -1.0f, 2.9f});
  SamplingOptions o;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  EXPECT_EQ(pick_token(logits, o, gen), 1);
  o.top_p = 0.0;
  EXPECT_THROW(check_sampling(o), std::exception);
  o.top_p = 1.0;
  o.top_k = -1;
  EXPECT_THROW(check_sampling(o), std::exception);
}

}  // namespace
}  // namespace l4::generate
