#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checkpoint/model_weights.h"
#include "unit/checkpoint/test_util.h"

namespace l4::checkpoint {
namespace {

using testing::same_tensor;
using testing::TempDir;
using testing::throws_error_with;

TEST(NameMappingTest, DetectsTheLayout) {
  EXPECT_EQ(detect_layout({"model.embed_tokens.weight", "lm_head.weight"}, "x"), HfLayout::kCausalLM);
  EXPECT_EQ(detect_layout({"lm_head.weight"}, "x"), HfLayout::kCausalLM);
  EXPECT_EQ(detect_layout({"language_model.model.norm.weight", "vision_model.class_embedding"}, "x"),
            HfLayout::kConditionalGeneration);
  EXPECT_EQ(detect_layout({"multi_modal_projector.linear_1.weight"}, "x"), HfLayout::kConditionalGeneration);
  EXPECT_TRUE(throws_error_with([] { detect_layout({"language_model.lm_head.weight", "model.norm.weight"}, "ck"); },
                                {"ck", "language_model.lm_head.weight", "model.norm.weight", "mix"}));
  EXPECT_TRUE(throws_error_with([] { detect_layout({"encoder.weight"}, "ck"); }, {"ck", "no Llama 4"}));
  EXPECT_TRUE(throws_error_with([] { detect_layout({}, "ck"); }, {"ck"}));
}

TEST(NameMappingTest, MapsBothLayoutsToCanonicalNamesAndBack) {
  const HfLayout mm = HfLayout::kConditionalGeneration, text = HfLayout::kCausalLM;
  const std::vector<std::pair<std::string, std::string>> mm_names = {
      {"language_model.model.embed_tokens.weight", "model.embed_tokens.weight"},
      {"language_model.model.layers.3.feed_forward.experts.gate_up_proj",
       "model.layers.3.feed_forward.experts.gate_up_proj"},
      {"language_model.lm_head.weight", "lm_head.weight"},
      {"vision_model.model.layers.0.mlp.fc1.bias", "vision_model.model.layers.0.mlp.fc1.bias"},
      {"multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_1.weight"},
  };
  for (const auto& [hf, canonical] : mm_names) {
    EXPECT_EQ(hf_to_canonical(hf, mm), canonical);
    EXPECT_EQ(canonical_to_hf(canonical, mm), hf);
  }
  for (const std::string name : {"model.norm.weight", "lm_head.weight", "model.layers.1.self_attn.q_proj.weight"}) {
    EXPECT_EQ(hf_to_canonical(name, text), name);
    EXPECT_EQ(canonical_to_hf(name, text), name);
  }
  // Names that belong to neither pattern stay as they are (and are then reported as unexpected).
  EXPECT_EQ(hf_to_canonical("language_model.extra", mm), "language_model.extra");
  EXPECT_EQ(hf_to_canonical("model.norm.weight", mm), "model.norm.weight");
}

std::vector<std::pair<std::string, at::Tensor>> multimodal_weights() {
  torch::manual_seed(5);
  return {{"language_model.model.embed_tokens.weight", at::randn({8, 4}).to(at::kBFloat16)},
          {"language_model.model.norm.weight", at::ones({4}, at::kBFloat16)},
          {"language_model.lm_head.weight", at::randn({8, 4}).to(at::kBFloat16)},
          {"language_model.model.layers.0.feed_forward.experts.down_proj", at::randn({4, 3, 4})},
          {"vision_model.class_embedding", at::randn({6})},
          {"multi_modal_projector.linear_1.weight", at::randn({4, 6})}};
}

std::map<std::string, ExpectedTensor> expected_for_multimodal() {
  return {{"model.embed_tokens.weight", {{8, 4}, "BF16"}},
          {"model.norm.weight", {{4}, ""}},
          {"lm_head.weight", {{8, 4}, "BF16"}},
          {"model.layers.0.feed_forward.experts.down_proj", {{4, 3, 4}, "F32"}},
          {"vision_model.class_embedding", {{6}, ""}},
          {"multi_modal_projector.linear_1.weight", {{4, 6}, ""}}};
}

TEST(ModelWeightsTest, LoadsAMultimodalCheckpointByCanonicalNames) {
  TempDir dir;
  const auto weights = multimodal_weights();
  save_hf_weights(dir.path(), weights, 100);
  const ModelWeights mw = ModelWeights::open_dir(dir.path());
  EXPECT_EQ(mw.layout(), HfLayout::kConditionalGeneration);
  EXPECT_NO_THROW(mw.check(expected_for_multimodal()));
  std::vector<std::string> want;
  for (const auto& [name, t] : expected_for_multimodal()) want.push_back(name);
  EXPECT_EQ(mw.names(), want);
  EXPECT_TRUE(same_tensor(mw.load("lm_head.weight"), weights[2].second));
  EXPECT_TRUE(same_tensor(mw.load_rows("model.layers.0.feed_forward.experts.down_proj", 1, 3),
                          weights[3].second.slice(0, 1, 3)));
  EXPECT_EQ(mw.entry("model.norm.weight").dtype, "BF16");
  EXPECT_TRUE(mw.contains("model.norm.weight"));
  EXPECT_FALSE(mw.contains("language_model.model.norm.weight"));
}

TEST(ModelWeightsTest, ReportsEveryProblemAtOnce) {
  TempDir dir;
  auto weights = multimodal_weights();
  weights.push_back({"language_model.model.layers.0.extra.weight", at::ones({2})});
  save_hf_weights(dir.path(), weights, 100);
  const ModelWeights mw = ModelWeights::open_dir(dir.path());
  auto expected = expected_for_multimodal();
  expected.erase("vision_model.class_embedding");                          // -> unexpected
  expected["model.layers.0.self_attn.q_proj.weight"] = {{4, 4}, ""};       // -> missing
  expected["model.norm.weight"] = {{5}, ""};                               // -> shape mismatch
  expected["multi_modal_projector.linear_1.weight"] = {{4, 6}, "BF16"};    // -> dtype mismatch

  const WeightCheckReport report = compare_weights(mw.source(), mw.layout(), expected);
  EXPECT_EQ(report.missing.size(), 1u);
  EXPECT_EQ(report.unexpected.size(), 2u);
  EXPECT_EQ(report.mismatched.size(), 2u);
  const std::string norm_file = mw.source().file_of("language_model.model.norm.weight");
  const std::string extra_file = mw.source().file_of("language_model.model.layers.0.extra.weight");
  EXPECT_TRUE(throws_error_with([&] { mw.check(expected); },
                                {dir.path(), "Llama4ForConditionalGeneration",
                                 "missing: 'language_model.model.layers.0.self_attn.q_proj.weight' (model name "
                                 "'model.layers.0.self_attn.q_proj.weight')",
                                 "unexpected: 'vision_model.class_embedding' in ",
                                 "unexpected: 'language_model.model.layers.0.extra.weight' in " + extra_file,
                                 "'language_model.model.norm.weight' in " + norm_file + ": shape [4]",
                                 "expects [5]", "dtype F32 in the checkpoint, the model expects BF16"}));
}

TEST(ModelWeightsTest, TextOnlyCheckpointUsesNamesAsTheyAre) {
  TempDir dir;
  save_hf_weights(dir.path(), {{"model.norm.weight", at::ones({4})}, {"lm_head.weight", at::ones({8, 4})}});
  const ModelWeights mw = ModelWeights::open_dir(dir.path());
  EXPECT_EQ(mw.layout(), HfLayout::kCausalLM);
  EXPECT_NO_THROW(mw.check({{"model.norm.weight", {{4}, "F32"}}, {"lm_head.weight", {{8, 4}, ""}}}));
  EXPECT_TRUE(throws_error_with([&] { mw.check({{"model.norm.weight", {{4}, "F32"}}}); },
                                {"0 missing, 1 unexpected", "'lm_head.weight' in " + dir.file("model.safetensors")}));
  EXPECT_EQ(check_weights(mw.source(), {{"model.norm.weight", {{4}, ""}}, {"lm_head.weight", {{8, 4}, ""}}}),
            HfLayout::kCausalLM);
  EXPECT_TRUE(throws_error_with([&] { check_weights(mw.source(), {{"lm_head.weight", {{8, 5}, ""}}}); },
                                {dir.path(), "Llama4ForCausalLM", "'model.norm.weight' in", "expects [8, 5]"}));
  EXPECT_TRUE(throws_error_with([&] { mw.load("language_model.lm_head.weight"); }, {"lm_head.weight"}));
}

}  // namespace
}  // namespace l4::checkpoint
