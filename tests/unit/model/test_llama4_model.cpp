// Whole-model plumbing on a tiny random model: HF names, layer kinds, dtypes, metrics and loss helpers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "kernels/fused_switch.h"
#include "model/kv_cache.h"
#include "model/llama4.h"
#include "model/loss.h"
#include "model/placed.h"

namespace l4::model {
namespace {

config::TextConfig tiny() {
  config::TextConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 8;
  c.intermediate_size_mlp = 20;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.num_local_experts = 3;
  c.interleave_moe_layer_step = 2;
  c.attention_chunk_size = 3;
  return c;
}

TEST(Llama4Model, ParameterNamesFollowHuggingFace) {
  Llama4 model(tiny());
  const auto params = model->named_parameters();
  for (const char* name :
       {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.feed_forward.up_proj.weight", "model.layers.1.feed_forward.experts.gate_up_proj",
        "model.layers.1.feed_forward.experts.down_proj", "model.layers.1.feed_forward.router.weight",
        "model.layers.1.feed_forward.shared_expert.down_proj.weight",
        "model.layers.3.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"}) {
    EXPECT_NE(params.find(name), nullptr) << name;
  }
  const std::string experts = "model.layers.1.feed_forward.experts.";
  EXPECT_EQ(params[experts + "gate_up_proj"].sizes(), (std::vector<int64_t>{3, 16, 16}));
  EXPECT_EQ(params[experts + "down_proj"].sizes(), (std::vector<int64_t>{3, 8, 16}));
  // Dense layers: 2 norms + 4 attention + 3 MLP; MoE layers: 2 + 4 + 2 experts + router + 3 shared;
  // then embed, norm, head.
  EXPECT_EQ(params.size(), 2u * 9 + 2u * 12 + 3);
}

TEST(Llama4Model, ForwardBackwardAndMetrics) {
  Llama4 model(tiny());
  model->reset_parameters(42);
  model->set_router_loss({0.01, 0.001});
  const at::Tensor ids = torch::randint(0, 50, {2, 7}, torch::kLong);
  const at::Tensor logits = model->forward(ids);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 7, 50}));
  const at::Tensor loss = causal_lm_loss(logits, ids) + model->router_loss();
  loss.backward();
  EXPECT_TRUE(model->named_parameters()["model.layers.3.feed_forward.router.weight"].grad().defined());
  const auto counts = model->expert_token_counts();
  ASSERT_EQ(counts.size(), 2u);
  for (const auto& c : counts) EXPECT_EQ(c.sum().item<int64_t>(), 14);
}

TEST(Llama4Model, Bfloat16ForwardStaysBfloat16AndCloseToFloat32) {
  Llama4 model(tiny());
  model->reset_parameters(7);
  const at::Tensor ids = torch::randint(0, 50, {1, 9}, torch::kLong);
  const at::Tensor want = model->forward(ids);
  model->to(torch::kBFloat16);
  const at::Tensor got = model->forward(ids);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LT((got.to(torch::kFloat) - want).abs().max().item<double>(), 0.05);
}

// The fused CPU kernels (RMSNorm, qk-norm, SwiGLU, RoPE) against the composite expressions they replace,
// through the whole model: same logits, loss and gradients of every parameter.
TEST(Llama4Model, FusedKernelsMatchTheCompositeExpressions) {
  config::TextConfig c = tiny();
  c.use_qk_norm = true;
  Llama4 model(c);
  model->reset_parameters(3);
  const at::Tensor ids = torch::randint(0, 50, {2, 7}, torch::kLong);
  auto run = [&](bool fused) {
    kernels::set_fused_enabled(fused);
    model->zero_grad();
    const at::Tensor logits = model->forward(ids);
    causal_lm_loss(logits, ids).backward();
    kernels::set_fused_enabled(true);
    std::vector<at::Tensor> out{logits.detach()};
    for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const std::vector<at::Tensor> composite = run(false), fused = run(true);
  ASSERT_EQ(composite.size(), fused.size());
  EXPECT_LE((fused[0] - composite[0]).abs().max().item<double>(), 1e-5) << "logits";
  for (size_t i = 1; i < fused.size(); ++i) {
    const double scale = composite[i].abs().max().item<double>() + 1e-12;
    EXPECT_LE((fused[i] - composite[i]).abs().max().item<double>() / scale, 1e-5) << "gradient " << i;
  }
}

TEST(Llama4Model, ExpertRunnerSeamSeesEveryMoeLayer) {
  Llama4 model(tiny());
  model->reset_parameters(3);
  const at::Tensor ids = torch::randint(0, 50, {2, 5}, torch::kLong);
  const at::Tensor want = model->forward(ids);
  int calls = 0;
  model->set_expert_runner([&](const at::Tensor& rows, const std::vector<int64_t>& counts,
                               const at::Tensor& gate_up, const at::Tensor& down) {
    ++calls;
    EXPECT_EQ(rows.size(0), 10);
    return run_experts(rows, counts, gate_up, down);
  });
  EXPECT_TRUE(torch::equal(model->forward(ids), want));
  EXPECT_EQ(calls, 2);
}

TEST(Llama4Model, RejectsOutOfRangeIds) {
  Llama4 model(tiny());
  model->reset_parameters(1);
  EXPECT_THROW(model->forward(torch::tensor({{1, 50}}, torch::kLong)), l4::Error);
  EXPECT_THROW(model->forward(torch::tensor({1, 2}, torch::kLong)), l4::Error);
}

TEST(Llama4Model, ExpertTensorsAreShardedEverythingElseReplicated) {
  ModelOptions options;
  options.experts = {1, 2};  // experts [1, 3) of 3
  Llama4 model(tiny(), options);
  int sharded = 0;
  for (const PlacedParam& p : placed_parameters(*model)) {
    const bool expert = p.name.find(".experts.") != std::string::npos;
    EXPECT_EQ(p.placement.is_sharded(), expert) << p.name;
    if (!expert) continue;
    ++sharded;
    EXPECT_EQ(p.placement.group, parallel::ShardGroup::kExpertParallel);
    EXPECT_EQ(p.placement.offset, 1);
    EXPECT_EQ(p.placement.global_size, 3);
    EXPECT_EQ(p.param.size(0), 2);
    EXPECT_EQ(p.placement.global_shape(p.param.sizes())[0], 3);
  }
  EXPECT_EQ(sharded, 4);  // two MoE layers x (gate_up_proj, down_proj)
  // Same names and order as named_parameters().
  const auto placed = placed_parameters(*model);
  const auto named = model->named_parameters();
  ASSERT_EQ(placed.size(), named.size());
  for (size_t i = 0; i < placed.size(); ++i) EXPECT_EQ(placed[i].name, named[i].key());
}

TEST(Llama4Model, InitIsTheSameForEveryExpertShard) {
  Llama4 full(tiny());
  full->init_parameters(11);
  ModelOptions options;
  options.experts = {2, 1};
  Llama4 shard(tiny(), options);
  shard->init_parameters(11);
  const auto want = full->named_parameters();
  for (const auto& item : shard->named_parameters()) {
    const at::Tensor& w = want[item.key()];
    const at::Tensor expected = item.value().sizes() == w.sizes() ? w : w.narrow(0, 2, 1);
    EXPECT_TRUE(torch::equal(item.value(), expected)) << item.key();
  }
}

// The cache path is the training path: a prefill and then one token at a time give the logits of one full
// forward, across chunk boundaries (chunk 3) and on the NoPE layer with temperature tuning.
TEST(Llama4Model, KvCacheDecodingEqualsTheFullForward) {
  config::TextConfig config = tiny();
  config.no_rope_layers = {1, 1, 1, 0};
  config.attn_temperature_tuning = true;
  config.floor_scale = 2;
  config.attn_scale = 0.5;
  config.use_qk_norm = true;
  Llama4 model(config);
  model->reset_parameters(5);
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::randint(0, 50, {1, 11}, torch::kLong);
  const at::Tensor full = model->forward(ids);
  KvCache cache(config.num_hidden_layers);
  ModelInput input;
  input.cache = &cache;
  input.input_ids = ids.narrow(1, 0, 4);
  std::vector<at::Tensor> pieces = {model->forward(input)};
  for (int64_t t = 4; t < 11; ++t) {
    input.input_ids = ids.narrow(1, t, 1);
    pieces.push_back(model->forward(input));
  }
  EXPECT_EQ(cache.length(), 11);
  EXPECT_LT((torch::cat(pieces, 1) - full).abs().max().item<double>(), 1e-5);
}

TEST(Loss, IgnoresMinus100AndShiftsLikeHuggingFace) {
  torch::manual_seed(2);
  const at::Tensor logits = torch::randn({1, 4, 6});
  const at::Tensor labels = torch::tensor({{3, 1, -100, 5}}, torch::kLong);
  // Positions 0 and 2 predict labels 1 and 5; position 1's target is ignored, position 3 has none.
  const at::Tensor logp = torch::log_softmax(logits[0], -1);
  const double want = -(logp[0][1].item<double>() + logp[2][5].item<double>()) / 2;
  EXPECT_NEAR(causal_lm_loss(logits, labels).item<double>(), want, 1e-6);
  const LossSum sum = cross_entropy_sum(logits, labels);
  EXPECT_EQ(sum.count.item<int64_t>(), 3);
  EXPECT_EQ(cross_entropy_mean(logits, torch::full({1, 4}, -100, torch::kLong)).item<double>(), 0.0);
}

}  // namespace
}  // namespace l4::model
