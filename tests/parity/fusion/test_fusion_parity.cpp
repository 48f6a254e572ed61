// Early fusion against transformers' Llama4ForConditionalGeneration (data from fusion_oracle.py): a tiny
// random multimodal model saved by save_pretrained, a prompt with two images (2x3 grid + global tile, and a
// single tile) from the real processor; logits and the gradients into the vision tower and projector.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/model_weights.h"
#include "checkpoint/name_mapping.h"
#include "checkpoint/safetensors.h"
#include "config/model_arch.h"
#include "core/error.h"
#include "core/file_io.h"
#include "model/build.h"
#include "model/weights.h"

namespace l4 {
namespace {

using nlohmann::json;

const std::string kData = std::string(L4_TEST_DATA_DIR) + "/fusion/";

struct Reference {
  json info = json::parse(read_file(kData + "info.json"));
  std::shared_ptr<checkpoint::SafetensorsFile> io =
      checkpoint::SafetensorsFile::open(kData + "io.safetensors");
  at::Tensor get(const std::string& name) const { return io->load(name); }
};

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

double relative(const at::Tensor& ours, const at::Tensor& want) {
  return max_abs(ours, want) / std::max(1e-12, want.to(at::kDouble).abs().max().item<double>());
}

at::Tensor forward(model::Llama4& m, const at::Tensor& input_ids, const at::Tensor& pixel_values) {
  model::ModelInput input;
  input.input_ids = input_ids;
  input.pixel_values = pixel_values;
  return m->forward(input);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(FusionParity, NamesEqualHfSavePretrained) {
  const Reference ref;
  const model::Llama4 loaded = model::load_pretrained(kData + "model");
  std::set<std::string> ours, theirs;
  for (const auto& item : loaded->named_parameters()) {
    ours.insert(checkpoint::canonical_to_hf(item.key(), checkpoint::HfLayout::kConditionalGeneration));
  }
  for (const auto& name : ref.info["saved_names"]) theirs.insert(name.get<std::string>());
  EXPECT_EQ(ours, theirs);
}

TEST(FusionParity, LogitsAndVisionGradientsMatchHf) {
  const Reference ref;
  model::Llama4 m = model::load_pretrained(kData + "model");
  m->eval();
  const at::Tensor input_ids = ref.get("input_ids");
  const at::Tensor pixel_values = ref.get("pixel_values");
  ASSERT_EQ(pixel_values.size(0), 8);  // 2x3 grid + global tile, and one tile
  ASSERT_EQ(input_ids.eq(ref.info["image_token_index"].get<int64_t>()).sum().item<int64_t>(),
            8 * m->vision_model->tokens_per_tile());
  const at::Tensor logits = forward(m, input_ids, pixel_values);
  const at::Tensor want = ref.get("logits");
  ASSERT_EQ(logits.sizes(), want.sizes());
  const double logits_err = max_abs(logits, want);
  std::printf("fused logits max-abs %.3g (max |logit| %.3g)\n", logits_err, want.abs().max().item<double>());
  EXPECT_LE(logits_err, 1e-4);

  (logits * ref.get("grad_weights")).sum().backward();
  double worst = 0.0;
  std::string worst_name;
  int compared = 0;
  for (const auto& item : m->named_parameters()) {
    const std::string& name = item.key();
    if (name.rfind("vision_model.", 0) != 0 && name.rfind("multi_modal_projector.", 0) != 0) continue;
    ASSERT_TRUE(ref.io->contains("grad." + name)) << name;
    ASSERT_TRUE(item.value().grad().defined()) << name;
    const double rel = relative(item.value().grad(), ref.get("grad." + name));
    EXPECT_LE(rel, 1e-4) << name;
    if (rel > worst) worst = rel, worst_name = name;
    ++compared;
  }
  std::printf("vision/projector gradients: %d tensors, max relative error %.3g (%s)\n", compared, worst,
              worst_name.c_str());
  EXPECT_GT(compared, 20);
}

TEST(FusionParity, FrozenTowerGivesSameLogitsAndOnlyProjectorGradients) {
  const Reference ref;
  model::Llama4 m = model::load_pretrained(kData + "model");
  m->set_freeze_vision(true);
  for (const auto& p : m->vision_model->parameters()) EXPECT_FALSE(p.requires_grad());
  const at::Tensor logits = forward(m, ref.get("input_ids"), ref.get("pixel_values"));
  EXPECT_LE(max_abs(logits, ref.get("logits")), 1e-4);
  (logits * ref.get("grad_weights")).sum().backward();
  for (const auto& p : m->vision_model->parameters()) EXPECT_FALSE(p.grad().defined());
  const at::Tensor& w = m->multi_modal_projector->linear_1->weight;
  ASSERT_TRUE(w.grad().defined());
  EXPECT_LE(relative(w.grad(), ref.get("grad.multi_modal_projector.linear_1.weight")), 1e-4);
}

TEST(FusionParity, TileCountMismatchNamesBothCounts) {
  const Reference ref;
  model::Llama4 m = model::load_pretrained(kData + "model");
  torch::NoGradGuard no_grad;
  const at::Tensor pixels = ref.get("pixel_values");
  const int64_t per_tile = m->vision_model->tokens_per_tile();
  const std::string message = error_of([&] { forward(m, ref.get("input_ids"), pixels.slice(0, 1)); });
  EXPECT_NE(message.find(std::to_string(8 * per_tile)), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(7 * per_tile)), std::string::npos) << message;
  // Wrong tile shape: named.
  const std::string shape = error_of([&] { forward(m, ref.get("input_ids"), pixels.slice(2, 0, 300)); });
  EXPECT_NE(shape.find("pixel_values"), std::string::npos) << shape;
}

TEST(FusionParity, TextOnlyCheckpointFillsTheTextPart) {
  const Reference ref;
  model::Llama4 full = model::load_pretrained(kData + "model");
  model::Llama4 m(full->arch());
  m->reset_parameters(7);
  const at::Tensor tower_before = m->vision_model->class_embedding.clone();
  EXPECT_FALSE(model::load_weights(*m, checkpoint::ModelWeights::open_dir(kData + "text_model")));
  auto theirs = full->named_parameters();
  int text_tensors = 0;
  for (const auto& item : m->named_parameters()) {
    if (item.key().rfind("model.", 0) == 0 || item.key().rfind("lm_head.", 0) == 0) {
      EXPECT_TRUE(item.value().equal(*theirs.find(item.key()))) << item.key();
      ++text_tensors;
    }
  }
  EXPECT_GT(text_tensors, 10);
  EXPECT_TRUE(m->vision_model->class_embedding.equal(tower_before));
  // Without pixel_values the <|patch|> ids keep their text embeddings, as the text model computes them.
  torch::NoGradGuard no_grad;
  const at::Tensor ids = ref.get("input_ids").slice(1, 0, 40);
  EXPECT_LE(max_abs(m->forward(ids), full->forward(ids)), 1e-6);
}

TEST(FusionParity, CheckpointThatDoesNotFitIsRejectedWithNames) {
  config::ModelArch arch = config::load_model_arch(kData + "model");
  arch.vision_config->num_hidden_layers += 1;
  model::Llama4 m(arch);
  const std::string message =
      error_of([&] { model::load_weights(*m, checkpoint::ModelWeights::open_dir(kData + "model")); });
  EXPECT_NE(message.find("vision_model.model.layers.2."), std::string::npos) << message;
  // A text-only architecture builds no tower: image tiles are refused, naming the missing vision_config.
  config::ModelArch text_only = arch;
  text_only.vision_config.reset();
  model::Llama4 text(text_only);
  torch::NoGradGuard no_grad;
  const Reference ref;
  EXPECT_NE(
      error_of([&] { forward(text, ref.get("input_ids"), ref.get("pixel_values")); }).find("vision_config"),
      std::string::npos);
}

}  // namespace
}  // namespace l4
