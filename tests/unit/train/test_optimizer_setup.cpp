// The learning rates the optimizer actually applies (read back from its own groups) follow the
// per-layer formula and the schedule multiplier; state exists only for updated parameters.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "train/optimizer_setup.h"

namespace l4::train {
namespace {

TEST(OptimizerSetupTest, AppliedLearningRatesFollowTheGroups) {
  config::OptimizerSection opt;
  opt.lr = 1e-2;
  opt.layer_decay = 0.5;
  config::ParamGroupRule rule;
  rule.match = "*.router.*";
  rule.lr_scale = 0.1;
  opt.param_groups = {rule};
  const std::vector<std::string> names = {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                                          "model.layers.1.feed_forward.router.weight", "lm_head.weight"};
  std::vector<NamedParam> params;
  for (const auto& name : names) {
    params.push_back({name, torch::randn({3, 3}, torch::requires_grad()), parallel::Placement::replicated()});
  }
  const auto settings = resolve_param_settings(names, opt, /*num_layers=*/2);
  OptimizerSetup setup(params, settings, 1e-8);
  setup.set_lr_multiplier(0.5);
  EXPECT_DOUBLE_EQ(setup.current_lr(names[0]), 1e-2 * 0.25 * 0.5);
  EXPECT_DOUBLE_EQ(setup.current_lr(names[1]), 1e-2 * 0.5 * 0.5);
  EXPECT_DOUBLE_EQ(setup.current_lr(names[2]), 1e-2 * 1.0 * 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(setup.current_lr(names[3]), 1e-2 * 0.5);
  for (size_t i = 0; i < settings.size(); ++i) EXPECT_DOUBLE_EQ(setup.current_lr(names[i]), settings[i].lr * 0.5);

  // Only parameters that received a gradient get optimizer state.
  (params[1].param.sum() + params[3].param.sum()).backward();
  setup.step();
  EXPECT_FALSE(setup.state(names[0]).has_value());
  ASSERT_TRUE(setup.state(names[1]).has_value());
  EXPECT_EQ(setup.state(names[1])->step, 1);
  EXPECT_TRUE(setup.state(names[3]).has_value());

  // State round-trips through set_state (checkpoint restore).
  auto state = *setup.state(names[1]);
  OptimizerSetup fresh(params, settings, 1e-8);
  fresh.set_state(names[1], state);
  EXPECT_TRUE(torch::equal(fresh.state(names[1])->exp_avg, state.exp_avg));
  EXPECT_EQ(fresh.state(names[1])->step, 1);
}

// The fused update equals LibTorch's own AdamW (an independent implementation of the same rule) over
// several steps, with weight decay, two groups of different lr/betas, a parameter without a gradient in
// one step, and a state restored midway (the resume path).
TEST(OptimizerSetupTest, FusedStepEqualsTorchAdamW) {
  torch::manual_seed(3);
  config::OptimizerSection opt;
  opt.lr = 3e-2;
  opt.weight_decay = 0.1;
  config::ParamGroupRule rule;
  rule.match = "*.router.*";
  rule.lr_scale = 0.5;
  rule.betas = std::vector<double>{0.8, 0.95};
  opt.param_groups = {rule};
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight",
                                          "model.layers.0.feed_forward.router.weight", "lm_head.weight"};
  const std::vector<std::vector<int64_t>> shapes = {{5, 7}, {4, 3}, {33, 2}};
  std::vector<NamedParam> ours, theirs;
  for (size_t i = 0; i < names.size(); ++i) {
    const at::Tensor init = torch::randn(shapes[i]);
    ours.push_back({names[i], init.clone().requires_grad_(), parallel::Placement::replicated()});
    theirs.push_back({names[i], init.clone().requires_grad_(), parallel::Placement::replicated()});
  }
  const auto settings = resolve_param_settings(names, opt, /*num_layers=*/1);
  auto setup = std::make_unique<OptimizerSetup>(ours, settings, 1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (size_t i = 0; i < names.size(); ++i) {
    auto options = std::make_unique<torch::optim::AdamWOptions>(settings[i].lr);
    options->betas({settings[i].beta1, settings[i].beta2}).eps(1e-8).weight_decay(settings[i].weight_decay);
    groups.emplace_back(std::vector<at::Tensor>{theirs[i].param}, std::move(options));
  }
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(0.0));
  for (int step = 0; step < 6; ++step) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (step == 2 && i == 2) continue;  // no gradient this step: no update, no step count
      const at::Tensor g = torch::randn(shapes[i]);
      ours[i].param.mutable_grad() = g.clone();
      theirs[i].param.mutable_grad() = g.clone();
    }
    setup->step();
    reference.step();
    setup->zero_grad();
    reference.zero_grad(/*set_to_none=*/true);
    if (step == 3) {  // resume: a fresh optimizer from the saved state continues identically
      auto restored = std::make_unique<OptimizerSetup>(ours, settings, 1e-8);
      for (const auto& name : names) restored->set_state(name, *setup->state(name));
      setup = std::move(restored);
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(torch::allclose(ours[i].param, theirs[i].param, /*rtol=*/1e-5, /*atol=*/1e-6)) << names[i];
    EXPECT_EQ(setup->state(names[i])->step, i == 2 ? 5 : 6) << names[i];
  }
}

}  // namespace
}  // namespace l4::train

#include "parallel/communicator.h"
#include "train/exact_match.h"

namespace l4::train {
namespace {

TEST(ExactMatchTest, ADocumentCountsOnlyWhenEveryTargetIsPredicted) {
  // Two rows, vocab 3. Row 0: doc 7 (targets at t=0,1 both right), doc 8 (t=2 wrong).
  // Row 1: doc 8 continues (right), doc 9 has no scored token.
  at::Tensor logits = torch::zeros({2, 3, 3});
  auto hot = [&](int64_t b, int64_t t, int64_t v) { logits[b][t][v] = 5.0; };
  hot(0, 0, 1);
  hot(0, 1, 2);
  hot(0, 2, 0);
  hot(1, 0, 2);
  hot(1, 1, 0);
  const at::Tensor labels = torch::tensor({{1, 2, 1}, {2, -100, -100}});
  const at::Tensor docs = torch::tensor({{7, 7, 8}, {8, 9, 9}});
  ExactMatchCounter counter;
  counter.add(logits, labels, docs);
  parallel::SelfCommunicator self;
  EXPECT_DOUBLE_EQ(counter.accuracy(self), 0.5);  // doc 7 right, doc 8 wrong, doc 9 not scored
  EXPECT_TRUE(std::isnan(ExactMatchCounter().accuracy(self)));
}

}  // namespace
}  // namespace l4::train
