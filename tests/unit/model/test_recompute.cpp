// Activation checkpointing (model/recompute.h): with none, moe and full recomputation the loss (cross-entropy
// plus router loss) and every parameter gradient equal the plain run within 1e-6 relative in float32, with
// LoRA dropout drawing the same masks in the recompute, with full fine-tuning, with packed documents and a
// NoPE layer; and the recompute nodes really stand in the graph.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <deque>
#include <map>
#include <set>
#include <string>

#include "common/lora_fixtures.h"
#include "config/options.h"
#include "lora/lora_modules.h"
#include "model/llama4.h"
#include "model/recompute.h"

namespace l4::model {
namespace {

using config::ActivationCheckpointing;

struct StepResult {
  double loss = 0;
  std::map<std::string, at::Tensor> grads;
  int64_t recompute_nodes = 0;
};

// Nodes of the backward graph named like the recompute node.
int64_t count_recompute_nodes(const at::Tensor& root) {
  std::set<torch::autograd::Node*> seen;
  std::deque<torch::autograd::Node*> todo{root.grad_fn().get()};
  int64_t count = 0;
  while (!todo.empty()) {
    torch::autograd::Node* node = todo.front();
    todo.pop_front();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find("Recompute") != std::string::npos) ++count;
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return count;
}

StepResult train_step(ActivationCheckpointing mode, bool lora, bool packed,
                      PackedAttention packed_attention = PackedAttention::kMasks, uint64_t draw_seed = 99) {
  const config::TextConfig config = lora::testing::tiny_config();  // MoE + dense layers, layer 3 NoPE
  Llama4 m(config);
  m->reset_parameters(5);
  if (lora) {
    lora::LoraOptions o = lora::testing::all_targets();
    o.dropout = 0.25;
    lora::apply_lora(*m, o, 6);
    lora::testing::randomize_lora(*m, 7);
  }
  m->set_router_loss({/*aux_loss_coef=*/0.05, /*z_loss_coef=*/0.01});
  if (mode == ActivationCheckpointing::kMoe) recompute_experts(*m);
  m->model->recompute_layers = mode == ActivationCheckpointing::kFull;
  m->model->packed_attention = packed_attention;
  m->train();

  torch::manual_seed(11);
  const at::Tensor ids = torch::randint(0, config.vocab_size, {2, 25});
  std::optional<at::Tensor> doc_ids;
  if (packed) {  // three documents in row 0, two in row 1 (documents longer than a chunk cross chunk edges)
    doc_ids = torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                             0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1},
                            torch::kLong)
                  .view({2, 24});
  }
  torch::manual_seed(draw_seed);  // the dropout draws start here in every mode
  const at::Tensor logits = m->forward(ids.narrow(1, 0, 24), std::nullopt, doc_ids);
  at::Tensor loss =
      torch::cross_entropy_loss(logits.reshape({-1, config.vocab_size}), ids.narrow(1, 1, 24).reshape({-1}));
  const at::Tensor aux = m->router_loss();
  EXPECT_TRUE(aux.defined() && aux.requires_grad());
  loss = loss + aux;
  StepResult run;
  run.recompute_nodes = count_recompute_nodes(loss);
  run.loss = loss.item<double>();
  loss.backward();
  // Backward leaves the recorded router loss as the forward made it (a recompute must not replace it).
  EXPECT_TRUE(m->router_loss().equal(aux));
  for (const auto& item : m->named_parameters()) {
    if (item.value().requires_grad()) {
      EXPECT_TRUE(item.value().grad().defined()) << item.key();
      run.grads[item.key()] = item.value().grad().clone();
    }
  }
  return run;
}

void expect_equal_runs(const StepResult& ref, const StepResult& got, const std::string& what) {
  EXPECT_NEAR(got.loss, ref.loss, 1e-6 * std::abs(ref.loss)) << what;
  ASSERT_EQ(got.grads.size(), ref.grads.size()) << what;
  double worst = 0;
  for (const auto& [name, g] : ref.grads) {
    const at::Tensor& h = got.grads.at(name);
    const double scale = std::max(g.abs().max().item<double>(), 1e-12);
    const double rel = (h - g).abs().max().item<double>() / scale;
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-6) << what << ": " << name;
  }
  std::cout << "[recompute] " << what << ": " << ref.grads.size() << " gradients, worst relative " << worst
            << "\n";
}

void check_modes(bool lora, bool packed, const std::string& what,
                 PackedAttention packed_attention = PackedAttention::kMasks) {
  const StepResult none = train_step(ActivationCheckpointing::kNone, lora, packed, packed_attention);
  const StepResult moe = train_step(ActivationCheckpointing::kMoe, lora, packed, packed_attention);
  const StepResult full = train_step(ActivationCheckpointing::kFull, lora, packed, packed_attention);
  EXPECT_EQ(none.recompute_nodes, 0);
  EXPECT_EQ(moe.recompute_nodes, 2);   // the two MoE layers of the tiny config
  EXPECT_EQ(full.recompute_nodes, 4);  // every decoder layer
  expect_equal_runs(none, moe, what + " moe");
  expect_equal_runs(none, full, what + " full");
}

TEST(Recompute, LoraWithDropoutMatchesPlainBackward) {
  check_modes(true, false, "lora dropout");
}
TEST(Recompute, FullFineTuningMatchesPlainBackward) {
  check_modes(false, false, "full fine-tuning");
}
TEST(Recompute, PackedDocumentsMatchPlainBackward) {
  check_modes(true, true, "packed lora (masks)");
  check_modes(false, true, "packed full fine-tuning (causal segments)", PackedAttention::kSegments);
}

// The comparison above can see a wrong dropout mask: other draws change the loss and the gradients far
// beyond its tolerance.
TEST(Recompute, OtherDropoutDrawsAreSeen) {
  const StepResult a = train_step(ActivationCheckpointing::kNone, true, false);
  const StepResult b =
      train_step(ActivationCheckpointing::kNone, true, false, PackedAttention::kMasks, /*draw_seed=*/100);
  EXPECT_GT(std::abs(a.loss - b.loss), 1e-4 * std::abs(a.loss));
  double worst = 0;
  for (const auto& [name, g] : a.grads) {
    worst = std::max(worst, (b.grads.at(name) - g).abs().max().item<double>() /
                                std::max(g.abs().max().item<double>(), 1e-12));
  }
  EXPECT_GT(worst, 1e-3);
}

// No recompute in evaluation or without grad: the nodes appear only in training forwards.
TEST(Recompute, EvalAndNoGradRunPlainly) {
  const config::TextConfig config = lora::testing::tiny_config();
  Llama4 m(config);
  m->reset_parameters(5);
  m->model->recompute_layers = true;
  const at::Tensor ids = torch::randint(0, config.vocab_size, {1, 9});
  m->eval();
  EXPECT_EQ(count_recompute_nodes(m->forward(ids)), 0);
  m->train();
  EXPECT_EQ(count_recompute_nodes(m->forward(ids)), 4);
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(m->forward(ids).requires_grad());
}

}  // namespace
}  // namespace l4::model
