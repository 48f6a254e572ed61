// The learning rates the optimizer actually applies (read back from its own groups) follow the
// per-layer formula and the schedule multiplier; state exists only for updated parameters.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lora_fixtures.h"
#include "lora/lora_modules.h"
#include "model/llama4.h"
#include "model/loss.h"
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
  const std::vector<std::string> names = {"model.embed_tokens.weight",
                                          "model.layers.0.self_attn.q_proj.weight",
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
  for (size_t i = 0; i < settings.size(); ++i)
    EXPECT_DOUBLE_EQ(setup.current_lr(names[i]), settings[i].lr * 0.5);

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

// bf16 parameters: the update goes to an fp32 master with fp32 AdamW state, so lr 1e-5 updates (far
// below half a bf16 ulp of entries ~1) accumulate as in an fp32 AdamW started from the same values; the
// parameter is the master rounded to bf16.
TEST(OptimizerSetupTest, Bfloat16ParametersAccumulateSmallUpdatesInFp32Masters) {
  torch::manual_seed(5);
  config::OptimizerSection opt;
  opt.lr = 1e-5;
  opt.weight_decay = 0.01;
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight"};
  const at::Tensor init = torch::randn({6, 9}).to(at::kBFloat16);
  std::vector<NamedParam> ours = {
      {names[0], init.clone().requires_grad_(), parallel::Placement::replicated()}};
  const at::Tensor reference = init.to(at::kFloat).requires_grad_();
  const auto settings = resolve_param_settings(names, opt, /*num_layers=*/1);
  OptimizerSetup setup(ours, settings, 1e-8);
  auto options = torch::optim::AdamWOptions(settings[0].lr);
  options.betas({settings[0].beta1, settings[0].beta2}).eps(1e-8).weight_decay(settings[0].weight_decay);
  torch::optim::AdamW fp32({reference}, options);
  for (int step = 0; step < 10; ++step) {
    const at::Tensor g = torch::randn({6, 9}).to(at::kBFloat16);
    ours[0].param.mutable_grad() = g;
    reference.mutable_grad() = g.to(at::kFloat);
    setup.step();
    fp32.step();
    setup.zero_grad();
  }
  const at::Tensor master = setup.master(names[0]);
  ASSERT_TRUE(master.defined());
  EXPECT_EQ(master.scalar_type(), at::kFloat);
  EXPECT_EQ(setup.state(names[0])->exp_avg.scalar_type(), at::kFloat);
  EXPECT_EQ(setup.state(names[0])->exp_avg_sq.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::allclose(master, reference.detach(), 1e-6, 1e-7))
      << (master - reference.detach()).abs().max().item<double>();
  EXPECT_TRUE(torch::equal(ours[0].param.detach(), master.to(at::kBFloat16)));
  // The master moved by ~1e-4 in total, well below a bf16 ulp for most entries: without a master almost
  // nothing would have changed; with it every entry's master did.
  EXPECT_EQ(master.eq(init.to(at::kFloat)).sum().item<int64_t>(), 0);
  // fp32 parameters keep no master.
  std::vector<NamedParam> fp32_params = {
      {names[0], torch::randn({2, 2}).requires_grad_(), parallel::Placement::replicated()}};
  OptimizerSetup plain(fp32_params, settings, 1e-8);
  fp32_params[0].param.mutable_grad() = torch::ones({2, 2});
  plain.step();
  EXPECT_FALSE(plain.master(names[0]).defined());
}

// LoRA on a bf16 base: the adapter tensors are fp32 (the base stays bf16, experts included), so 10 steps
// at lr 1e-5 change (nearly) every A and B entry; with bf16 adapters most A entries stayed unchanged.
TEST(OptimizerSetupTest, LoraOnBfloat16BaseChangesEveryAdapterEntry) {
  torch::manual_seed(11);
  const config::TextConfig config = lora::testing::tiny_config();
  model::ModelOptions model_options;
  model_options.dtype = at::kBFloat16;
  model::Llama4 m(config, model_options);
  m->reset_parameters(1);
  lora::LoraOptions lora_options = lora::testing::all_targets();
  lora_options.base_dtype = at::kBFloat16;
  lora::apply_lora(*m, lora_options, 3);
  std::vector<NamedParam> params;
  std::vector<std::string> names;
  std::vector<at::Tensor> before;
  for (const auto& item : m->named_parameters()) {
    if (item.key().find("lora") == std::string::npos) {
      EXPECT_FALSE(item.value().requires_grad()) << item.key();
      EXPECT_EQ(item.value().scalar_type(), at::kBFloat16) << item.key();  // the frozen base stays bf16
      continue;
    }
    EXPECT_EQ(item.value().scalar_type(), at::kFloat) << item.key();
    params.push_back({item.key(), item.value(), parallel::Placement::replicated()});
    names.push_back(item.key());
    before.push_back(item.value().detach().clone());
  }
  ASSERT_FALSE(params.empty());
  config::OptimizerSection opt;
  opt.lr = 1e-5;
  OptimizerSetup setup(params, resolve_param_settings(names, opt, config.num_hidden_layers), 1e-8);
  const at::Tensor ids = torch::randint(0, config.vocab_size, {2, 12});
  // Entries that ever got a non-zero gradient (an expert no token is routed to gets none).
  std::vector<at::Tensor> touched;
  for (const auto& p : params) touched.push_back(torch::zeros_like(p.param, at::kBool));
  for (int step = 0; step < 10; ++step) {
    model::causal_lm_loss(m->forward(ids), ids).backward();
    for (size_t i = 0; i < params.size(); ++i) {
      if (params[i].param.grad().defined()) touched[i].logical_or_(params[i].param.grad().ne(0));
    }
    setup.step();
    setup.zero_grad();
  }
  int64_t unchanged = 0, counted = 0, a_entries = 0, a_same_in_bf16 = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor after = params[i].param.detach();
    unchanged += after.eq(before[i]).logical_and(touched[i]).sum().item<int64_t>();
    counted += touched[i].sum().item<int64_t>();
    if (names[i].find("_A") != std::string::npos) {
      // What bf16 storage could hold of the same updates: rounding to bf16 erases most of them.
      a_entries += touched[i].sum().item<int64_t>();
      a_same_in_bf16 += after.to(at::kBFloat16)
                            .eq(before[i].to(at::kBFloat16))
                            .logical_and(touched[i])
                            .sum()
                            .item<int64_t>();
    }
  }
  ASSERT_GT(counted, 1000);
  EXPECT_EQ(unchanged, 0) << unchanged << " of " << counted << " adapter entries with gradients unchanged";
  EXPECT_GT(a_same_in_bf16 * 2, a_entries) << a_same_in_bf16 << " of " << a_entries
                                           << " A entries equal in bf16 (the updates a bf16 adapter loses)";
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
