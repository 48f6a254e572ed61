// Eval per task: each task's loss is the mean cross-entropy over its own target tokens and its exact match
// counts its own documents, checked against the same sums done by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "model/chunked_loss.h"
#include "parallel/communicator.h"
#include "train/task_scores.h"

namespace l4::train {
namespace {

TEST(TaskScores, LossAndExactMatchPerTask) {
  torch::manual_seed(3);
  const int64_t V = 11;
  at::Tensor logits = torch::randn({2, 6, V});
  // Row 0: document 0 (task 1) then document 1 (task 0); row 1: document 2 (task 1) and padding.
  const at::Tensor doc_ids = torch::tensor({0, 0, 0, 1, 1, 1, 2, 2, 2, 2, -1, -1}, torch::kLong).view({2, 6});
  const at::Tensor task_ids =
      torch::tensor({1, 1, 1, 0, 0, 0, 1, 1, 1, 1, -1, -1}, torch::kLong).view({2, 6});
  at::Tensor labels = torch::full({2, 6}, -100, torch::kLong);
  // Document 1 and 2 are answered exactly (labels = argmax), document 0 has one wrong target.
  const at::Tensor argmax = logits.argmax(-1);
  for (int64_t t : {4, 5}) labels[0][t] = argmax[0][t];
  for (int64_t t : {1, 2, 3}) labels[1][t] = argmax[1][t];
  labels[0][1] = (argmax[0][1] + 1) % V;
  labels[0][2] = argmax[0][2];

  TaskScores scores({"text", "image"});
  scores.add(logits, labels, doc_ids, task_ids);
  parallel::SelfCommunicator self;
  const std::vector<TaskScore> out = scores.result(self);
  ASSERT_EQ(out.size(), 2u);

  const at::Tensor logp = torch::log_softmax(logits, -1);
  auto nll = [&](int64_t b, int64_t t) { return -logp[b][t][labels[b][t]].item<double>(); };
  EXPECT_EQ(out[0].name, "text");
  EXPECT_EQ(out[0].tokens, 2);
  EXPECT_NEAR(out[0].loss, (nll(0, 4) + nll(0, 5)) / 2, 1e-6);
  EXPECT_EQ(out[0].documents, 1);
  EXPECT_DOUBLE_EQ(out[0].exact_match, 1.0);
  EXPECT_EQ(out[1].name, "image");
  EXPECT_EQ(out[1].tokens, 5);
  EXPECT_NEAR(out[1].loss, (nll(0, 1) + nll(0, 2) + nll(1, 1) + nll(1, 2) + nll(1, 3)) / 5, 1e-6);
  EXPECT_EQ(out[1].documents, 2);
  EXPECT_DOUBLE_EQ(out[1].exact_match, 0.5);
}

// The chunked loss's per-token values give the same per-task figures as whole logits.
TEST(TaskScores, ChunkedEvalTokensEqualWholeLogits) {
  torch::manual_seed(5);
  const at::Tensor hidden = torch::randn({2, 7, 8});
  const at::Tensor weight = torch::randn({13, 8});
  const at::Tensor logits = torch::matmul(hidden, weight.t());
  at::Tensor labels = torch::randint(0, 13, {2, 7}, torch::kLong);
  labels[0][0] = -100;
  labels[1][6] = -100;
  labels[1][2] = logits.argmax(-1)[1][2];
  const at::Tensor doc_ids = torch::tensor({0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3}, torch::kLong).view({2, 7});
  const at::Tensor task_ids = torch::tensor({0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1}, torch::kLong).view({2, 7});
  TaskScores whole({"a", "b"}), chunked({"a", "b"});
  whole.add(logits, labels, doc_ids, task_ids);
  const model::ChunkedEval eval = model::chunked_cross_entropy_eval(hidden, weight, labels, 5);
  chunked.add_tokens(eval.token_nll, eval.predictions, labels, doc_ids, task_ids);
  parallel::SelfCommunicator self;
  const auto a = whole.result(self), b = chunked.result(self);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(a[i].loss, b[i].loss, 1e-6);
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    EXPECT_EQ(a[i].documents, b[i].documents);
    EXPECT_EQ(a[i].exact_match, b[i].exact_match);
  }
}

}  // namespace
}  // namespace l4::train
