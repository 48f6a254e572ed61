// Multimodal generation against transformers' Llama4ForConditionalGeneration.generate (data from
// generate_image_oracle.py): a tiny random multimodal model over the bundled tokenizer, user prompts with
// one and with two images (one tile; a grid plus its global tile). Checked: the prompt ids equal the HF
// processor's, greedy ids equal HF's exactly (and change with the image), the cached logits of every
// generated token equal HF's, and the cached decoder equals a full multimodal forward per step.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/file_io.h"
#include "generate/generator.h"
#include "generate/image_prompt.h"
#include "model/build.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"

namespace l4::generate {
namespace {

using nlohmann::json;

const std::string kData = std::string(L4_TEST_DATA_DIR) + "/generate_image/";

struct Fixture {
  json cases = json::parse(read_file(kData + "cases.json"));
  std::unique_ptr<tokenizer::Tokenizer> tok = tokenizer::Tokenizer::load(kData + "model");
  model::Llama4 model = model::load_pretrained(kData + "model");
  std::shared_ptr<checkpoint::SafetensorsFile> logits =
      checkpoint::SafetensorsFile::open(kData + "logits.safetensors");
  Fixture() { model->eval(); }

  // Logits of the prompt (images fused in) through the cache, then of each of `tokens` fed one at a time.
  std::vector<at::Tensor> cached_steps(const ImagePrompt& p, const std::vector<int64_t>& tokens) {
    model::KvCache cache(model->text_config().num_hidden_layers);
    model::ModelInput input;
    input.cache = &cache;
    input.input_ids = torch::tensor(p.ids, torch::kLong).unsqueeze(0);
    input.pixel_values = p.pixel_values;
    std::vector<at::Tensor> steps = {model->forward(input).to(at::kFloat)};
    input.pixel_values = at::Tensor();
    for (int64_t id : tokens) {
      input.input_ids = torch::tensor({id}, torch::kLong).view({1, 1});
      steps.push_back(model->forward(input).to(at::kFloat));
    }
    return steps;
  }

  std::vector<std::string> images(const json& c, bool other = false) const {
    std::vector<std::string> out;
    for (const auto& rel : c.at("images")) out.push_back(kData + rel.get<std::string>());
    if (other) out[0] = kData + c.at("other_image").get<std::string>();
    return out;
  }
  ImagePrompt prompt(const json& c, bool other = false) const {
    return build_image_prompt(*tok, c.at("text").get<std::string>(), images(c, other),
                              *model->arch().vision_config);
  }
  SamplingOptions options(const json& c) const {
    SamplingOptions o;
    o.max_new_tokens = c.at("max_new_tokens").get<int64_t>();
    o.stop_ids = {tok->eot_id(), tok->eos_id()};
    for (int64_t id : c.at("stop_ids")) o.stop_ids.push_back(id);
    return o;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

TEST(GenerateImageParity, PromptIdsEqualHfProcessor) {
  for (const auto& c : fixture().cases) {
    const ImagePrompt p = fixture().prompt(c);
    EXPECT_EQ(p.ids, c.at("input_ids").get<std::vector<int64_t>>()) << c.at("name");
    EXPECT_EQ(p.pixel_values.scalar_type(), at::kBFloat16);
  }
}

TEST(GenerateImageParity, GreedyIdsEqualHfGenerate) {
  auto& f = fixture();
  for (const auto& c : f.cases) {
    const auto want = c.at("generated").get<std::vector<int64_t>>();
    const ImagePrompt p = f.prompt(c);
    const auto got = generate(*f.model, p.ids, p.pixel_values, f.options(c));
    EXPECT_EQ(got, want) << c.at("name");
    // Another first image: HF's ids for it, which differ (the image reaches the answer).
    const ImagePrompt o = f.prompt(c, /*other=*/true);
    const auto other = generate(*f.model, o.ids, o.pixel_values, f.options(c));
    EXPECT_EQ(other, c.at("generated_other_image").get<std::vector<int64_t>>()) << c.at("name");
    EXPECT_NE(other, got);
    std::cout << "[generate-image] " << c.at("name").get<std::string>() << ": " << p.num_tiles << " tiles, "
              << p.ids.size() << "-token prompt, " << got.size() << " greedy ids equal HF's\n";
  }
}

TEST(GenerateImageParity, CachedLogitsEqualHf) {
  auto& f = fixture();
  torch::NoGradGuard no_grad;
  for (const auto& c : f.cases) {
    const auto generated = c.at("generated").get<std::vector<int64_t>>();
    const ImagePrompt p = f.prompt(c);
    std::vector<at::Tensor> steps =
        f.cached_steps(p, std::vector<int64_t>(generated.begin(), generated.end() - 1));
    for (at::Tensor& step : steps) step = step.select(1, -1);
    const at::Tensor ours = torch::cat(steps, 0);
    const at::Tensor want = f.logits->load(c.at("name").get<std::string>());
    ASSERT_EQ(ours.sizes(), want.sizes());
    const double diff = (ours - want).abs().max().item<double>();
    std::cout << "[generate-image] " << c.at("name").get<std::string>() << ": logits of " << want.size(0)
              << " generated tokens, max-abs vs HF " << diff << " (max |logit| "
              << want.abs().max().item<double>() << ")\n";
    EXPECT_LE(diff, 1e-4);
  }
}

TEST(GenerateImageParity, CachedEqualsFullMultimodalForwardEachStep) {
  auto& f = fixture();
  for (const auto& c : f.cases) {
    const ImagePrompt p = f.prompt(c);
    const SamplingOptions o = f.options(c);
    const auto cached = generate(*f.model, p.ids, p.pixel_values, o);
    const auto uncached = generate_greedy_uncached(*f.model, p.ids, p.pixel_values, o.max_new_tokens, o.stop_ids);
    EXPECT_EQ(cached, uncached) << c.at("name");
    EXPECT_GE(cached.size(), 8u);
    // Logits: prefill + one token at a time through the cache vs one full multimodal forward.
    torch::NoGradGuard no_grad;
    std::vector<int64_t> all = p.ids;
    all.insert(all.end(), cached.begin(), cached.end());
    model::ModelInput whole;
    whole.input_ids = torch::tensor(all, torch::kLong).unsqueeze(0);
    whole.pixel_values = p.pixel_values;
    const at::Tensor full = f.model->forward(whole);
    const std::vector<at::Tensor> steps = f.cached_steps(p, cached);
    const double diff = (torch::cat(steps, 1) - full.to(at::kFloat)).abs().max().item<double>();
    std::cout << "[generate-image] " << c.at("name").get<std::string>()
              << ": KV cache vs full forward logits max-abs " << diff << " over " << all.size()
              << " tokens\n";
    EXPECT_LE(diff, 1e-4);
  }
}

TEST(GenerateImageParity, ImageErrorsNameTheProblem) {
  auto& f = fixture();
  const json& c = f.cases.at(0);
  const auto message = [&](const std::string& text, const std::vector<std::string>& images) -> std::string {
    try {
      build_image_prompt(*f.tok, text, images, *f.model->arch().vision_config);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::vector<std::string> one = f.images(c);
  EXPECT_NE(message("x", {kData + "images/missing.png"}).find("missing.png"), std::string::npos);
  EXPECT_NE(message("x", {kData + "images/corrupt.png"}).find("corrupt.png"), std::string::npos);
  // Placeholders in the text must match the images: both counts named.
  const std::string two_for_one = message("<|image|> and <|image|>", one);
  EXPECT_NE(two_for_one.find("has 2 image placeholders"), std::string::npos) << two_for_one;
  EXPECT_NE(two_for_one.find("1 images"), std::string::npos) << two_for_one;
  // A placeholder typed where the images would go gives the same prompt as the images put before the text.
  const std::string text = c.at("text").get<std::string>();
  EXPECT_EQ(build_image_prompt(*f.tok, "<|image|>" + text, one, *f.model->arch().vision_config).ids,
            fixture().prompt(c).ids);
}

}  // namespace
}  // namespace l4::generate
