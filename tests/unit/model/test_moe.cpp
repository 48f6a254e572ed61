// Sparse MoE (sorted by expert, one matmul per expert) against HF's dense all-experts formula.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/moe.h"

namespace l4::model {
namespace {

config::TextConfig moe_config(int64_t top_k) {
  config::TextConfig c;
  c.hidden_size = 12;
  c.intermediate_size = 10;
  c.num_local_experts = 5;
  c.num_experts_per_tok = top_k;
  return c;
}

Moe random_moe(int64_t top_k) {
  torch::manual_seed(11 + top_k);
  Moe moe(moe_config(top_k), torch::TensorOptions().dtype(torch::kFloat));
  torch::NoGradGuard no_grad;
  for (auto& p : moe->parameters()) p.normal_(0.0, 0.4);
  return moe;
}

class MoeTopK : public ::testing::TestWithParam<int64_t> {};

TEST_P(MoeTopK, SparseEqualsDenseReferenceWithGradients) {
  Moe moe = random_moe(GetParam());
  const at::Tensor x = torch::randn({3, 7, 12}, torch::requires_grad());
  const at::Tensor sparse = moe->forward(x);
  const auto params = moe->parameters();
  const auto sparse_grads = torch::autograd::grad({(sparse * sparse).sum()}, {params.begin(), params.end()});
  const at::Tensor dense = moe_dense_reference(*moe, x);
  const auto dense_grads = torch::autograd::grad({(dense * dense).sum()}, {params.begin(), params.end()});
  EXPECT_TRUE(torch::allclose(sparse, dense, 1e-5, 1e-6));
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(sparse_grads[i], dense_grads[i], 1e-4, 1e-5)) << i;
  }
  // Every (token, slot) pair counted once.
  EXPECT_EQ(moe->last_expert_counts.sum().item<int64_t>(), 21 * GetParam());
  EXPECT_FALSE(moe->last_router_loss.defined());
}

INSTANTIATE_TEST_SUITE_P(TopK, MoeTopK, ::testing::Values(1, 2, 5));

TEST(Moe, CountsMatchTheRoutersChoice) {
  Moe moe = random_moe(2);
  const at::Tensor x = torch::randn({9, 12});
  moe->forward(x);
  const at::Tensor chosen = std::get<1>(moe->router->forward(x).topk(2, 1));
  EXPECT_TRUE(torch::equal(moe->last_expert_counts, torch::bincount(chosen.flatten(), {}, 5)));
}

TEST(Moe, RunExpertsSkipsEmptyExperts) {
  torch::manual_seed(3);
  const at::Tensor gate_up = torch::randn({3, 4, 6}), down = torch::randn({3, 3, 4});
  const at::Tensor rows = torch::randn({5, 4});
  const at::Tensor out = run_experts(rows, {0, 5, 0}, gate_up, down);
  const at::Tensor gu = rows.matmul(gate_up[1]);
  const at::Tensor want = (at::silu(gu.narrow(1, 0, 3)) * gu.narrow(1, 3, 3)).matmul(down[1]);
  EXPECT_TRUE(torch::allclose(out, want));
  EXPECT_EQ(run_experts(rows.narrow(0, 0, 0), {0, 0, 0}, gate_up, down).sizes(),
            (std::vector<int64_t>{0, 4}));
}

TEST(Moe, RouterLossesFollowTheirFormulas) {
  Moe moe = random_moe(2);
  moe->loss_options = {0.5, 0.25};
  const at::Tensor x = torch::randn({8, 12});
  moe->forward(x);
  const at::Tensor logits = moe->router->forward(x).detach();
  const at::Tensor chosen = std::get<1>(logits.topk(2, 1)).flatten();
  const at::Tensor counts = torch::bincount(chosen, {}, 5).to(torch::kFloat);
  const double aux = 5 * ((counts / 16.0) * torch::softmax(logits, -1).mean(0)).sum().item<double>();
  const double z = torch::logsumexp(logits, -1).pow(2).mean().item<double>();
  EXPECT_NEAR(moe->last_router_loss.item<double>(), 0.5 * aux + 0.25 * z, 1e-5);
  EXPECT_TRUE(moe->last_router_loss.requires_grad());
}

TEST(Moe, Bfloat16RunsAndStaysCloseToFloat32) {
  Moe moe = random_moe(1);
  const at::Tensor x = torch::randn({6, 12});
  const at::Tensor want = moe->forward(x);
  moe->to(torch::kBFloat16);
  const at::Tensor got = moe->forward(x.to(torch::kBFloat16));
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::allclose(got.to(torch::kFloat), want, 0.05, 0.05));
}

}  // namespace
}  // namespace l4::model
