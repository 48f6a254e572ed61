// The chunked cross-entropy against the whole-logits path (model::cross_entropy_sum of hidden @ W^T): the
// same sum, count and gradients in hidden and W, whatever the chunk size (one token, not dividing the
// tokens, larger than all of them), with ignored targets and chunks that hold no counted target.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include "model/chunked_loss.h"
#include "model/loss.h"

namespace l4::model {
namespace {

struct Case {
  at::Tensor hidden, weight, targets;
};

// [2, 13] positions (26 tokens), D = 16, V = 37; positions 3..12 of row 0 and a few others ignored, so a
// chunk of <= 10 tokens inside that run has nothing to count.
Case make_case() {
  torch::manual_seed(7);
  Case c;
  c.hidden = torch::randn({2, 13, 16});
  c.weight = torch::randn({37, 16}) * 0.5;
  c.targets = torch::randint(0, 37, {2, 13}, torch::kLong);
  c.targets.index_put_({0, torch::indexing::Slice(3, 13)}, kIgnoreIndex);
  c.targets.index_put_({1, 4}, kIgnoreIndex);
  c.targets.index_put_({1, 12}, kIgnoreIndex);
  return c;
}

struct Result {
  at::Tensor sum, count, grad_hidden, grad_weight;
};

Result run(const Case& c, int64_t chunk) {
  const at::Tensor hidden = c.hidden.clone().requires_grad_(true);
  const at::Tensor weight = c.weight.clone().requires_grad_(true);
  const LossSum loss = chunk == 0 ? cross_entropy_sum(at::matmul(hidden, weight.t()), c.targets)
                                  : chunked_cross_entropy_sum(hidden, weight, c.targets, chunk);
  (loss.sum * 0.75).backward();  // a non-unit upstream gradient
  return {loss.sum.detach(), loss.count, hidden.grad(), weight.grad()};
}

void expect_close(const at::Tensor& got, const at::Tensor& want, const char* what, int64_t chunk) {
  EXPECT_TRUE(torch::allclose(got, want, 1e-6, 1e-6))
      << what << " with chunk " << chunk << ": max difference " << (got - want).abs().max().item<double>();
}

TEST(ChunkedLossTest, EqualsTheWholeLogitsLossAndGradients) {
  const Case c = make_case();
  const Result want = run(c, 0);
  ASSERT_GT(want.grad_hidden.abs().sum().item<double>(), 0.0);
  for (int64_t chunk : {1, 3, 5, 7, 10, 26, 100}) {
    const Result got = run(c, chunk);
    expect_close(got.sum, want.sum, "sum", chunk);
    EXPECT_EQ(got.count.item<int64_t>(), want.count.item<int64_t>());
    expect_close(got.grad_hidden, want.grad_hidden, "grad hidden", chunk);
    expect_close(got.grad_weight, want.grad_weight, "grad weight", chunk);
  }
  // Ignored positions get no gradient.
  EXPECT_EQ(run(c, 4).grad_hidden[0].slice(0, 3, 13).abs().max().item<double>(), 0.0);
}

TEST(ChunkedLossTest, NothingCountedGivesZeroLossAndGradients) {
  Case c = make_case();
  c.targets.fill_(kIgnoreIndex);
  const Result got = run(c, 4);
  EXPECT_EQ(got.sum.item<double>(), 0.0);
  EXPECT_EQ(got.count.item<int64_t>(), 0);
  EXPECT_EQ(got.grad_hidden.abs().max().item<double>(), 0.0);
  EXPECT_EQ(got.grad_weight.abs().max().item<double>(), 0.0);
}

// A frozen projection (LoRA): only hidden gets a gradient.
TEST(ChunkedLossTest, FrozenWeightPassesTheGradientToHidden) {
  const Case c = make_case();
  const at::Tensor hidden = c.hidden.clone().requires_grad_(true);
  chunked_cross_entropy_sum(hidden, c.weight, c.targets, 6).sum.backward();
  const Result want = run(c, 0);
  EXPECT_TRUE(torch::allclose(hidden.grad() * 0.75, want.grad_hidden, 1e-6, 1e-6));
}

// Under no-grad (evaluation) only the loss is made, the same as with gradients.
TEST(ChunkedLossTest, NoGradGivesTheSameLoss) {
  const Case c = make_case();
  const Result want = run(c, 0);
  const at::Tensor hidden = c.hidden.clone().requires_grad_(true);
  const at::Tensor weight = c.weight.clone().requires_grad_(true);
  torch::NoGradGuard no_grad;
  const LossSum got = chunked_cross_entropy_sum(hidden, weight, c.targets, 4);
  EXPECT_FALSE(got.sum.requires_grad());
  expect_close(got.sum, want.sum, "sum under no-grad", 4);
}

// Under bf16 autocast the logits are bf16 matmuls like the autocast lm_head's; the log-softmax is fp32.
// A chunk of 150 positions of bf16 logits is widened to float32 in blocks of rows (64, 64, 22) for the
// log-softmax; chunks of 5 in one block.
TEST(ChunkedLossTest, FollowsBfloat16Autocast) {
  Case wide = make_case();
  wide.hidden = torch::randn({2, 75, 16});
  wide.targets = torch::randint(0, 37, {2, 75}, torch::kLong);
  for (const auto& [c, chunk] : {std::pair<Case, int64_t>{make_case(), 5}, {wide, 150}}) {
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    const at::Tensor hidden = c.hidden.clone().requires_grad_(true);
    const at::Tensor weight = c.weight.clone().requires_grad_(true);
    const LossSum chunked = chunked_cross_entropy_sum(hidden, weight, c.targets, chunk);
    const at::Tensor h2 = c.hidden.clone().requires_grad_(true);
    const at::Tensor w2 = c.weight.clone().requires_grad_(true);
    const LossSum whole = cross_entropy_sum(at::matmul(h2, w2.t()), c.targets);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    EXPECT_NEAR(chunked.sum.item<double>(), whole.sum.item<double>(), 1e-4 * whole.sum.abs().item<double>());
    chunked.sum.backward();
    whole.sum.backward();
    EXPECT_EQ(hidden.grad().scalar_type(), at::kFloat);
    EXPECT_EQ(weight.grad().scalar_type(), at::kFloat);
    EXPECT_TRUE(torch::allclose(hidden.grad(), h2.grad(), 2e-2, 2e-2));
    EXPECT_TRUE(torch::allclose(weight.grad(), w2.grad(), 2e-2, 2e-2));
    // bf16 differs from the fp32 loss: the matmul really ran in bf16.
    const Result fp32 = run(c, 0);
    EXPECT_NE(chunked.sum.item<float>(), fp32.sum.item<float>());
  }
}

TEST(ChunkedLossTest, EvalGivesTheLossAndGreedyPredictions) {
  const Case c = make_case();
  const at::Tensor logits = at::matmul(c.hidden, c.weight.t());
  const LossSum want = cross_entropy_sum(logits, c.targets);
  const ChunkedEval got = chunked_cross_entropy_eval(c.hidden, c.weight, c.targets, 7);
  EXPECT_TRUE(torch::allclose(got.loss.sum, want.sum, 1e-6, 1e-6));
  EXPECT_EQ(got.loss.count.item<int64_t>(), want.count.item<int64_t>());
  const at::Tensor counted = c.targets.ne(kIgnoreIndex);
  EXPECT_TRUE(got.predictions.masked_select(counted).equal(logits.argmax(-1).masked_select(counted)));
}

TEST(ChunkedLossTest, RejectsBadShapesAndChunks) {
  const Case c = make_case();
  EXPECT_THROW(chunked_cross_entropy_sum(c.hidden, c.weight, c.targets, 0), std::exception);
  EXPECT_THROW(chunked_cross_entropy_sum(c.hidden, c.weight.t(), c.targets, 4), std::exception);
  EXPECT_THROW(chunked_cross_entropy_sum(c.hidden, c.weight, c.targets.slice(1, 0, 5), 4), std::exception);
}

}  // namespace
}  // namespace l4::model
