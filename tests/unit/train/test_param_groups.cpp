#include <gtest/gtest.h>

#include <cmath>

#include "train/param_groups.h"

namespace l4::train {
namespace {

const std::vector<std::string> kNames = {
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.1.feed_forward.router.weight",
    "model.layers.1.feed_forward.experts.gate_up_proj",
    "model.norm.weight",
    "lm_head.weight",
    "vision_model.model.layers.0.self_attn.q_proj.bias",
};

TEST(ParamGroupsTest, LayerIdsFollowTheDecoderOrder) {
  EXPECT_EQ(layer_id_of("model.embed_tokens.weight", 2), 0);
  EXPECT_EQ(layer_id_of("model.layers.0.self_attn.q_proj.weight", 2), 1);
  EXPECT_EQ(layer_id_of("language_model.model.layers.1.feed_forward.router.weight", 2), 2);
  EXPECT_EQ(layer_id_of("lm_head.weight", 2), 2);
  EXPECT_EQ(layer_id_of("model.norm.weight", 2), 2);
  EXPECT_EQ(layer_id_of("vision_model.model.layers.0.mlp.fc1.weight", 2), 0);
}

TEST(ParamGroupsTest, LayerDecayAndRulesFollowTheFormula) {
  config::OptimizerSection opt;
  opt.lr = 1e-3;
  opt.weight_decay = 0.1;
  opt.layer_decay = 0.5;
  config::ParamGroupRule router;
  router.match = "*.router.*";
  router.lr_scale = 0.1;
  router.weight_decay = 0.0;
  config::ParamGroupRule head;
  head.match = "lm_head.*";
  head.lr = 5e-4;
  head.betas = {0.8, 0.9};
  opt.param_groups = {router, head};
  const auto settings = resolve_param_settings(kNames, opt, /*num_layers=*/2);
  ASSERT_EQ(settings.size(), kNames.size());
  auto expect = [&](size_t i, double lr, double wd, int rule) {
    EXPECT_NEAR(settings[i].lr, lr, 1e-15) << settings[i].name;
    EXPECT_DOUBLE_EQ(settings[i].weight_decay, wd) << settings[i].name;
    EXPECT_EQ(settings[i].rule, rule) << settings[i].name;
  };
  // lr_i = lr * decay^(L - id): embed id 0 -> 0.25, layer 0 id 1 -> 0.5, layer 1 id 2 -> 1.
  expect(0, 1e-3 * 0.25, 0.0, -1);   // embeddings: no decay by default
  expect(1, 1e-3 * 0.5, 0.1, -1);
  expect(2, 1e-3 * 0.5, 0.0, -1);    // norm
  expect(3, 1e-3 * 0.1, 0.0, 0);     // router rule: scale after layer decay, wd overridden
  expect(4, 1e-3, 0.1, -1);
  expect(5, 1e-3, 0.0, -1);
  expect(6, 5e-4, 0.1, 1);           // explicit lr is exact
  expect(7, 1e-3 * 0.25, 0.0, -1);   // vision bias: id 0, no decay
  EXPECT_DOUBLE_EQ(settings[6].beta1, 0.8);
  EXPECT_DOUBLE_EQ(settings[6].beta2, 0.9);
  EXPECT_DOUBLE_EQ(settings[1].beta2, 0.95);
}

TEST(ParamGroupsTest, FirstMatchingRuleWins) {
  config::OptimizerSection opt;
  config::ParamGroupRule a, b;
  a.match = "*norm*";
  a.lr_scale = 2.0;
  b.match = "*layernorm*";
  b.lr_scale = 3.0;
  opt.param_groups = {a, b};
  const auto settings = resolve_param_settings({"model.layers.0.input_layernorm.weight"}, opt, 1);
  EXPECT_EQ(settings[0].rule, 0);
  EXPECT_DOUBLE_EQ(settings[0].lr, opt.lr * 2.0);
}

TEST(ParamGroupsTest, IdenticalSettingsShareAGroup) {
  config::OptimizerSection opt;
  const auto groups = group_settings(resolve_param_settings(kNames, opt, 2));
  size_t total = 0;
  for (const auto& g : groups) total += g.names.size();
  EXPECT_EQ(total, kNames.size());
  EXPECT_EQ(groups.size(), 2u);  // decayed weights and no-decay (norms, biases, embeddings)
  const std::string table = format_param_settings(resolve_param_settings(kNames, opt, 2), opt);
  EXPECT_NE(table.find("model.layers.1.feed_forward.router.weight"), std::string::npos);
}

}  // namespace
}  // namespace l4::train
