// Whole-model plumbing on a tiny random model: HF names, layer kinds, dtypes, metrics and loss helpers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "model/llama4_model.h"
#include "model/loss.h"

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
  Llama4ForCausalLM model(tiny());
  const auto params = model->named_parameters();
  for (const char* name :
       {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.feed_forward.up_proj.weight",
        "model.layers.1.feed_forward.experts.gate_up_proj", "model.layers.1.feed_forward.experts.down_proj",
        "model.layers.1.feed_forward.router.weight",
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
  Llama4ForCausalLM model(tiny());
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
  Llama4ForCausalLM model(tiny());
  model->reset_parameters(7);
  const at::Tensor ids = torch::randint(0, 50, {1, 9}, torch::kLong);
  const at::Tensor want = model->forward(ids);
  model->to(torch::kBFloat16);
  const at::Tensor got = model->forward(ids);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LT((got.to(torch::kFloat) - want).abs().max().item<double>(), 0.05);
}

TEST(Llama4Model, ExpertRunnerSeamSeesEveryMoeLayer) {
  Llama4ForCausalLM model(tiny());
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
  Llama4ForCausalLM model(tiny());
  model->reset_parameters(1);
  EXPECT_THROW(model->forward(torch::tensor({{1, 50}}, torch::kLong)), l4::Error);
  EXPECT_THROW(model->forward(torch::tensor({1, 2}, torch::kLong)), l4::Error);
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
