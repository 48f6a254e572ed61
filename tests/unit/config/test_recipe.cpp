// Recipe loading: every error kind has the exact form "location: key.path: problem", all problems of
// a file are reported at once, overrides are typed and validated like the file.
#include <gtest/gtest.h>

#include "common/temp_dir.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/strings.h"

namespace l4::config {
namespace {

// The message of the l4::Error thrown by load_recipe, or "" when it loads.
std::string load_error(const std::string& path, const std::vector<std::string>& overrides = {}) {
  try {
    load_recipe(path, overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class RecipeTest : public ::testing::Test {
 protected:
  // A valid recipe with an inline architecture, so tests do not depend on configs/.
  std::string write_recipe(const std::string& extra) {
    const std::string text = std::string(
                                 "model:\n"
                                 "  text_config:\n"
                                 "    vocab_size: 256\n"
                                 "    hidden_size: 32\n"
                                 "    num_hidden_layers: 2\n"
                                 "    num_attention_heads: 4\n"
                                 "    num_key_value_heads: 2\n"
                                 "    num_local_experts: 4\n") +
                             extra;
    return dir_.write("recipe.yaml", text);
  }
  l4::testing::TempDir dir_;
};

TEST_F(RecipeTest, LoadsValuesAndDefaults) {
  const std::string path = write_recipe(
      "optimizer:\n"
      "  lr: 1.0e-3\n"
      "  betas: [0.8, 0.99]\n"
      "  param_groups:\n"
      "    - {match: '*.router.*', lr_scale: 0.1, weight_decay: 0.0}\n"
      "train: {steps: 7, global_batch: 8, micro_batch: 2}\n");
  const Recipe r = load_recipe(path);
  EXPECT_DOUBLE_EQ(r.optimizer.lr, 1e-3);
  EXPECT_EQ(r.optimizer.betas, (std::vector<double>{0.8, 0.99}));
  ASSERT_EQ(r.optimizer.param_groups.size(), 1u);
  EXPECT_EQ(r.optimizer.param_groups[0].match, "*.router.*");
  EXPECT_DOUBLE_EQ(*r.optimizer.param_groups[0].lr_scale, 0.1);
  EXPECT_FALSE(r.optimizer.param_groups[0].lr.has_value());
  EXPECT_EQ(r.train.steps, 7);
  EXPECT_EQ(r.train.micro_batch, 2);
  EXPECT_EQ(r.schedule.decay, Decay::kCosine);  // default
  EXPECT_EQ(r.arch.text_config.hidden_size, 32);
  EXPECT_EQ(r.arch.text_config.resolved_head_dim(), 8);
  EXPECT_EQ(r.arch.text_config.moe_layers, (std::vector<int64_t>{0, 1}));
}

TEST_F(RecipeTest, UnknownKeyNamesLineAndSuggestsClosest) {
  const std::string path = write_recipe("optimzer:\n  lr: 1.0e-3\n");
  EXPECT_EQ(load_error(path), path + ":9: optimzer: unknown key (did you mean 'optimizer'?)");
}

TEST_F(RecipeTest, UnknownNestedKeySuggestsWithinItsSection) {
  const std::string path = write_recipe("train:\n  stesp: 3\n");
  EXPECT_EQ(load_error(path), path + ":10: train.stesp: unknown key (did you mean 'steps'?)");
}

TEST_F(RecipeTest, UnknownKeyFarFromAnyGetsNoSuggestion) {
  const std::string path = write_recipe("train:\n  completely_unrelated_thing: 3\n");
  EXPECT_EQ(load_error(path), path + ":10: train.completely_unrelated_thing: unknown key");
}

TEST_F(RecipeTest, WrongTypeNamesExpectedKind) {
  const std::string path = write_recipe("train:\n  steps: many\n");
  EXPECT_EQ(load_error(path), path + ":10: train.steps: expected an integer, got 'many'");
}

TEST_F(RecipeTest, WrongStructureNamesExpectedKind) {
  const std::string path = write_recipe("optimizer:\n  betas: 0.9x\ntrain: [1, 2]\n");
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path + ":10: optimizer.betas: expected a list of numbers, got '0.9x' in it"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(path + ":11: train: expected a mapping of keys, got a list"), std::string::npos)
      << error;
}

TEST_F(RecipeTest, OutOfRangeValuesAreRejected) {
  const std::string path = write_recipe("optimizer:\n  lr: -1.0\n  layer_decay: 1.5\n");
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path + ":10: optimizer.lr: must be > 0, got -1"), std::string::npos) << error;
  EXPECT_NE(error.find(path + ":11: optimizer.layer_decay: must be in (0, 1], got 1.5"), std::string::npos)
      << error;
}

TEST_F(RecipeTest, ZeroStageOutOfRangeNamesFileAndKey) {
  const std::string path = write_recipe("optimizer:\n  zero: 3\n");
  EXPECT_NE(load_error(path).find(path + ":10: optimizer.zero: must be 0, 1 or 2, got 3"), std::string::npos)
      << load_error(path);
}

TEST_F(RecipeTest, EnumValuesSuggestTheClosestChoice) {
  const std::string path = write_recipe("schedule:\n  decay: cosin\n");
  EXPECT_EQ(load_error(path),
            path +
                ":10: schedule.decay: expected one of constant, cosine, linear, got 'cosin' (did you mean "
                "'cosine'?)");
}

// The training device and the profiler step are validated like every other key.
TEST_F(RecipeTest, DeviceAndProfileStepAreValidated) {
  const std::string path = write_recipe("train:\n  device: cude\nlogging:\n  profile_step: -2\n");
  const std::string error = load_error(path);
  EXPECT_NE(
      error.find(path + ":10: train.device: expected one of cpu, cuda, got 'cude' (did you mean 'cuda'?)"),
      std::string::npos)
      << error;
  EXPECT_NE(error.find(path + ":12: logging.profile_step: must be >= 0, got -2"), std::string::npos) << error;
}

// train.activation_checkpointing: none by default, the three names read, anything else named with the
// choices.
TEST_F(RecipeTest, ActivationCheckpointingIsAnEnum) {
  EXPECT_EQ(load_recipe(write_recipe("")).train.activation_checkpointing, ActivationCheckpointing::kNone);
  EXPECT_EQ(
      load_recipe(write_recipe("train:\n  activation_checkpointing: moe\n")).train.activation_checkpointing,
      ActivationCheckpointing::kMoe);
  EXPECT_EQ(
      load_recipe(write_recipe("train:\n  activation_checkpointing: full\n")).train.activation_checkpointing,
      ActivationCheckpointing::kFull);
  const std::string path = write_recipe("train:\n  activation_checkpointing: layers\n");
  const std::string error = load_error(path);
  EXPECT_NE(
      error.find(path + ":10: train.activation_checkpointing: expected one of none, moe, full, got 'layers'"),
      std::string::npos)
      << error;
}

TEST_F(RecipeTest, AllProblemsOfAFileAreReportedAtOnce) {
  const std::string path = write_recipe(
      "optimzer: {}\n"
      "train:\n"
      "  steps: x\n"
      "  micro_batch: 3\n"
      "  global_batch: 8\n"
      "lora: {dropout: 2.0}\n");
  const std::vector<std::string> lines = split(load_error(path), '\n');
  ASSERT_EQ(lines.size(), 4u) << join(lines, "\n");
  EXPECT_EQ(lines[0], path + ":9: optimzer: unknown key (did you mean 'optimizer'?)");
  EXPECT_EQ(lines[1], path + ":11: train.steps: expected an integer, got 'x'");
  EXPECT_EQ(lines[2], path + ":13: train.global_batch: must be a multiple of train.micro_batch=3, got 8");
  EXPECT_EQ(lines[3], path + ":14: lora.dropout: must be in [0, 1), got 2");
}

TEST_F(RecipeTest, ListItemsAreNamedByIndex) {
  const std::string path = write_recipe(
      "optimizer:\n"
      "  param_groups:\n"
      "    - {match: '*norm*', weight_decay: 0.0}\n"
      "    - {match: '', lr_scal: 2.0}\n");
  const std::string error = load_error(path);
  EXPECT_NE(
      error.find(path + ":12: optimizer.param_groups[1].lr_scal: unknown key (did you mean 'lr_scale'?)"),
      std::string::npos)
      << error;
  EXPECT_NE(error.find("optimizer.param_groups[1].match: must be a non-empty glob"), std::string::npos)
      << error;
}

TEST_F(RecipeTest, MalformedYamlNamesLineAndColumn) {
  const std::string path = dir_.write("bad.yaml", "train:\n  steps: [1, 2\nmodel: {}\n");
  const std::string error = load_error(path);
  EXPECT_EQ(error.rfind(path + ":", 0), 0u) << error;
  EXPECT_NE(error.find("malformed YAML"), std::string::npos) << error;
}

TEST_F(RecipeTest, MissingFileIsNamed) {
  EXPECT_EQ(load_error(dir_.file("nope.yaml")), dir_.file("nope.yaml") + ": no such file");
}

TEST_F(RecipeTest, OverridesAreTypedAndValidated) {
  const std::string path = write_recipe("train: {steps: 5}\n");
  const Recipe r = load_recipe(path, {"optimizer.lr=1e-4", "train.steps=10", "optimizer.betas=[0.5, 0.6]",
                                      "schedule.decay=linear", "data.pack=false"});
  EXPECT_DOUBLE_EQ(r.optimizer.lr, 1e-4);
  EXPECT_EQ(r.train.steps, 10);
  EXPECT_EQ(r.optimizer.betas, (std::vector<double>{0.5, 0.6}));
  EXPECT_EQ(r.schedule.decay, Decay::kLinear);
  EXPECT_FALSE(r.data.pack);

  EXPECT_EQ(load_error(path, {"train.steps=abc"}),
            "command line 'train.steps=abc': train.steps: expected an integer, got 'abc'");
  EXPECT_EQ(load_error(path, {"optimizer.lrr=1"}),
            "command line 'optimizer.lrr=1': optimizer.lrr: unknown key (did you mean 'lr'?)");
  EXPECT_EQ(load_error(path, {"train.steps=-2"}),
            "command line 'train.steps=-2': train.steps: must be > 0, got -2");
  EXPECT_EQ(load_error(path, {"novalue"}), "command line 'novalue': expected key.path=value");
}

TEST_F(RecipeTest, ExpertParallelMustDivideExperts) {
  const std::string path = write_recipe("parallel: {expert_parallel: 3}\n");
  EXPECT_EQ(load_error(path), path + ":9: parallel.expert_parallel: must divide num_local_experts=4, got 3");
}

TEST_F(RecipeTest, InlineArchitectureIsValidated) {
  const std::string path = dir_.write("arch.yaml",
                                      "model:\n"
                                      "  text_config:\n"
                                      "    hidden_size: 30\n"
                                      "    num_attention_heads: 4\n"
                                      "    num_key_value_heads: 3\n"
                                      "    hiden_act: silu\n");
  const std::string error = load_error(path);
  EXPECT_NE(
      error.find(path +
                 ":5: model.text_config.num_key_value_heads: must divide num_attention_heads (4), got 3"),
      std::string::npos)
      << error;
  EXPECT_NE(error.find(path + ":6: model.text_config.hiden_act: unknown key (did you mean 'hidden_act'?)"),
            std::string::npos)
      << error;
}

TEST_F(RecipeTest, TextConfigOverridesChangeTheArchitectureOfTheConfigFile) {
  const std::string arch = dir_.write("arch.yaml",
                                      "text_config:\n"
                                      "  vocab_size: 256\n"
                                      "  hidden_size: 32\n"
                                      "  num_hidden_layers: 2\n"
                                      "  num_attention_heads: 4\n"
                                      "  num_key_value_heads: 2\n"
                                      "  attention_chunk_size: 16\n");
  const std::string path =
      dir_.write("recipe.yaml",
                 "model:\n  config: " + arch + "\n  text_config_overrides: {attention_chunk_size: 8192}\n");
  const Recipe recipe = load_recipe(path, {});
  ASSERT_TRUE(recipe.arch.text_config.attention_chunk_size.has_value());
  EXPECT_EQ(*recipe.arch.text_config.attention_chunk_size, 8192);
  EXPECT_EQ(recipe.arch.text_config.hidden_size, 32);  // the rest comes from the file
  // Printed and loaded back, the overridden value stays.
  const std::string printed = dir_.write("printed.yaml", recipe_to_yaml(recipe));
  EXPECT_EQ(*load_recipe(printed, {}).arch.text_config.attention_chunk_size, 8192);

  const std::string typo = dir_.write(
      "typo.yaml", "model:\n  config: " + arch + "\n  text_config_overrides: {attention_chunk: 64}\n");
  EXPECT_NE(load_error(typo).find("model.text_config_overrides.attention_chunk: unknown key (did you mean "
                                  "'attention_chunk_size'?)"),
            std::string::npos)
      << load_error(typo);
  const std::string bad = dir_.write(
      "bad.yaml", "model:\n  config: " + arch + "\n  text_config_overrides: {num_key_value_heads: 3}\n");
  EXPECT_NE(load_error(bad).find("model.text_config_overrides.num_key_value_heads: must divide"),
            std::string::npos)
      << load_error(bad);
  const std::string inline_too = write_recipe("  text_config_overrides: {attention_chunk_size: 64}\n");
  EXPECT_NE(
      load_error(inline_too).find("model.text_config_overrides: changes the architecture of model.config"),
      std::string::npos)
      << load_error(inline_too);
}

TEST_F(RecipeTest, ModelSectionNeedsAnArchitecture) {
  const std::string path = dir_.write("empty.yaml", "train: {steps: 1}\n");
  EXPECT_NE(load_error(path).find("model: needs one of 'config', 'hf_dir' or an inline 'text_config'"),
            std::string::npos);
  const std::string missing = dir_.write("missing.yaml", "model: {config: /does/not/exist.yaml}\n");
  EXPECT_EQ(load_error(missing), missing + ":1: model.config: '/does/not/exist.yaml' does not exist");
}

TEST_F(RecipeTest, PrintedConfigLoadsBackToTheSameConfig) {
  const std::string path = write_recipe(
      "optimizer:\n  lr: 2.5e-4\n  param_groups: [{match: '*norm*', weight_decay: 0.0}]\n"
      "lora: {rank: 8, targets: [q_proj, experts]}\n");
  const Recipe first = load_recipe(path);
  const std::string printed = recipe_to_yaml(first);
  const std::string again_path = dir_.write("printed.yaml", printed);
  const Recipe second = load_recipe(again_path);
  EXPECT_EQ(recipe_to_yaml(second), printed);
  EXPECT_NE(printed.find("lr: 0.00025"), std::string::npos) << printed;
  EXPECT_NE(printed.find("warmup_steps: 0"), std::string::npos) << printed;  // defaults included
}

}  // namespace
}  // namespace l4::config
