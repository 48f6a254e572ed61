// The text model against transformers' Llama4ForCausalLM on the tiny models of model_oracle.py: logits,
// loss and gradients, and a packed row of two documents against HF run on each document alone.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "checkpoint/safetensors.h"
#include "checkpoint/weight_source.h"
#include "core/error.h"
#include "model/build.h"
#include "model/loss.h"
#include "model/rope.h"

namespace l4::model {
namespace {

const std::string kData = std::string(L4_TEST_DATA_DIR) + "/model_oracle/";

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}
// Largest error relative to the reference's largest magnitude.
double max_rel(const at::Tensor& got, const at::Tensor& want) {
  return max_abs(got, want) / std::max(1e-12, want.abs().max().item<double>());
}

class ModelParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelParity, LogitsLossAndGradientsMatchTransformers) {
  const std::string dir = kData + GetParam();
  torch::manual_seed(0);
  Llama4 model = load_pretrained(dir + "/model");
  const auto data = checkpoint::SafetensorsFile::open(dir + "/data.safetensors");

  EXPECT_TRUE(torch::equal(rope_inv_freq(model->text_config()), data->load("rope_inv_freq")));
  const at::Tensor logits = model->forward(data->load("input_ids"));
  const at::Tensor loss = causal_lm_loss(logits, data->load("labels"));
  loss.backward();
  const double logits_err = max_abs(logits, data->load("logits"));
  const double loss_err = max_abs(loss.reshape({1}), data->load("loss"));
  std::printf("[%s] logits max-abs %.3g (max |logit| %.3g), loss abs %.3g\n", GetParam().c_str(), logits_err,
              data->load("logits").abs().max().item<double>(), loss_err);
  EXPECT_LE(logits_err, 1e-4);
  EXPECT_LE(loss_err, 1e-5);

  const auto params = model->named_parameters();
  int grads = 0;
  for (const auto& entry : data->entries()) {
    if (entry.name.rfind("grad.", 0) != 0) continue;
    const std::string name = entry.name.substr(5);
    const at::Tensor* param = params.find(name);
    ASSERT_NE(param, nullptr) << name;
    ASSERT_TRUE(param->grad().defined()) << name;
    const double rel = max_rel(param->grad(), data->load(entry.name));
    std::printf("[%s]   grad %-55s rel %.3g\n", GetParam().c_str(), name.c_str(), rel);
    EXPECT_LE(rel, 1e-4) << name;
    ++grads;
  }
  EXPECT_GE(grads, 7);
}

INSTANTIATE_TEST_SUITE_P(Configs, ModelParity,
                         ::testing::Values("moe_every_layer", "interleave_llama3", "mixed_top2",
                                           "long_chunk"));

TEST(ModelParity, PackedDocumentsMatchEachDocumentAlone) {
  const std::string dir = kData + "moe_every_layer";
  Llama4 model = load_pretrained(dir + "/model");
  const auto data = checkpoint::SafetensorsFile::open(dir + "/data.safetensors");
  torch::NoGradGuard no_grad;
  for (const bool segments : {false, true}) {
    model->model->packed_attention = segments ? PackedAttention::kSegments : PackedAttention::kMasks;
    const at::Tensor logits =
        model->forward(data->load("packed_input_ids"), std::nullopt, data->load("packed_doc_ids"));
    const double err = max_abs(logits, data->load("packed_logits"));
    std::printf("[packed, %s] logits max-abs %.3g\n", segments ? "segments" : "masks", err);
    EXPECT_LE(err, 1e-4);
  }
  // Without the document boundary the second document sees the first: the check above can fail.
  const at::Tensor unpacked = model->forward(data->load("packed_input_ids"));
  EXPECT_GT(max_abs(unpacked, data->load("packed_logits")), 1e-3);
}

TEST(ModelParity, ParameterNamesEqualTheCheckpoints) {
  const std::string dir = kData + "interleave_llama3";
  Llama4 model = load_pretrained(dir + "/model");
  const auto weights = checkpoint::SafetensorsFile::open(dir + "/model/model.safetensors");
  std::vector<std::string> ours, theirs;
  for (const auto& item : model->named_parameters()) ours.push_back(item.key());
  for (const auto& entry : weights->entries()) theirs.push_back(entry.name);
  std::sort(ours.begin(), ours.end());
  std::sort(theirs.begin(), theirs.end());
  EXPECT_EQ(ours, theirs);
}

// A checkpoint with one tensor missing, one unknown and one misshapen: one error names all three, and
// nothing is loaded.
TEST(ModelParity, LoadingReportsMissingUnexpectedAndMisshapenTensors) {
  namespace fs = std::filesystem;
  const std::string src = kData + "long_chunk/model";
  const fs::path dir = fs::temp_directory_path() / ("l4_bad_weights_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  const auto weights = checkpoint::SafetensorsFile::open(src + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& entry : weights->entries()) {
    if (entry.name == "model.layers.1.self_attn.o_proj.weight") continue;
    at::Tensor t = weights->load(entry.name);
    if (entry.name == "model.layers.0.feed_forward.router.weight") t = t.narrow(0, 0, 3).contiguous();
    tensors.emplace_back(entry.name, t);
  }
  tensors.emplace_back("model.layers.9.extra.weight", torch::zeros({2}));
  checkpoint::save_hf_weights(dir.string(), tensors);
  try {
    load_pretrained(dir.string());
    ADD_FAILURE() << "loading a bad checkpoint succeeded";
  } catch (const l4::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.layers.1.self_attn.o_proj.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("model.layers.9.extra.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("model.layers.0.feed_forward.router.weight"), std::string::npos) << message;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace l4::model
