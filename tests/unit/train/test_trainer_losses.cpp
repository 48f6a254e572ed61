// Whole training runs on one rank (CPU) compared with each other: the chunked cross-entropy against the
// whole-logits path (train.loss_chunk_tokens: 0), and a bf16 full fine-tune stopped and resumed against the
// uninterrupted run (its fp32 masters and AdamW state go through the checkpoint).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/recipe.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"
#include "unit/data/synthetic_dataset.h"

namespace l4::train {
namespace {

std::string write_recipe(const std::string& dir, const std::string& extra) {
  const std::string path = dir + "/recipe.yaml";
  std::ofstream(path)
      << "model:\n"
         "  text_config: {vocab_size: 1000, hidden_size: 16, intermediate_size: 16,\n"
         "    intermediate_size_mlp: 32, num_hidden_layers: 2, num_attention_heads: 2,\n"
         "    num_key_value_heads: 1, head_dim: 8, num_local_experts: 2, num_experts_per_tok: 1,\n"
         "    interleave_moe_layer_step: 2, attention_chunk_size: 8, pad_token_id: 999}\n"
      << extra << "data: {train: " << dir << "/../data, eval: " << dir
      << "/../data, seq_len: 32}\n"
         "train: {steps: 4, global_batch: 2, micro_batch: 1, seed: 3, eval_every: 2, eval_batches: 2}\n"
         "checkpoint: {dir: "
      << dir
      << "/ckpt}\n"
         "logging: {run_dir: "
      << dir << "/run, tensorboard: false, peak_tflops: 1.0}\n";
  return path;
}

// metrics.jsonl: step -> {key: value}.
std::map<int64_t, nlohmann::json> metrics(const std::string& run_dir) {
  std::map<int64_t, nlohmann::json> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    out[j.at("step").get<int64_t>()].update(j);
  }
  return out;
}

class TrainerLosses : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = data::testing::fresh_dir("trainer_losses");
    std::filesystem::create_directories(root_);
    data::testing::SyntheticSpec spec;
    spec.docs = 30;
    data::testing::write_dataset(root_ + "/data", data::testing::make_documents(spec));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::map<int64_t, nlohmann::json> train(const std::string& tag, const std::string& extra,
                                          const std::vector<std::string>& overrides = {}) {
    const std::string dir = root_ + "/" + tag;
    std::filesystem::create_directories(dir);
    const config::Recipe recipe = config::load_recipe(write_recipe(dir, extra), overrides);
    parallel::SelfCommunicator self;
    const parallel::ProcessGrid grid(self, 1, recipe.arch.text_config.num_local_experts);
    EXPECT_EQ(run_training(recipe, grid, at::kCPU), 0);
    return metrics(dir + "/run");
  }

  std::string root_;
};

// Chunks of 5 tokens (not dividing the 32 of a row; the SFT mask leaves some chunks with nothing to count)
// give the losses, gradient norms and eval losses of the whole-logits path, step by step.
TEST_F(TrainerLosses, ChunkedLossEqualsTheWholeLogitsRun) {
  const auto whole = train("whole", "", {"train.loss_chunk_tokens=0"});
  const auto chunked = train("chunked", "", {"train.loss_chunk_tokens=5"});
  ASSERT_EQ(whole.size(), 4u);
  ASSERT_EQ(chunked.size(), 4u);
  for (const auto& [step, w] : whole) {
    const nlohmann::json& c = chunked.at(step);
    for (const char* key : {"loss", "grad_norm", "eval_loss", "eval_exact_match"}) {
      if (!w.contains(key)) continue;
      const double a = w.at(key).get<double>(), b = c.at(key).get<double>();
      EXPECT_NEAR(a, b, 1e-5 * std::max(1.0, std::abs(a))) << key << " at step " << step;
    }
  }
  EXPECT_TRUE(whole.at(2).contains("eval_loss"));
}

// bf16 parameters: 2 steps + checkpoint + 2 resumed steps equal 4 uninterrupted steps bitwise, which needs
// the fp32 masters (not just the rounded bf16 parameters) in the checkpoint.
TEST_F(TrainerLosses, Bfloat16RunResumesExactly) {
  const std::string bf16 = "  dtype: bfloat16\n";
  const std::vector<std::string> small_lr = {"optimizer.lr=1e-4", "schedule.warmup_steps=0"};
  auto with = [&](std::vector<std::string> v, const std::string& more) {
    v.push_back(more);
    return v;
  };
  const auto straight = train("straight", bf16, small_lr);
  train("split", bf16, with(small_lr, "train.stop_at_step=2"));
  const auto resumed = train("split", bf16, small_lr);
  ASSERT_EQ(straight.size(), 4u);
  for (int64_t step = 1; step <= 4; ++step) {
    ASSERT_TRUE(resumed.count(step)) << step;
    EXPECT_EQ(straight.at(step).at("loss").get<double>(), resumed.at(step).at("loss").get<double>())
        << "step " << step;
  }
}

// bf16 autocast over fp32 parameters (one weight cast per step, shared by the two micro-batches): a
// stopped and resumed run equals the uninterrupted one bitwise, and the losses stay within bf16 rounding
// of the fp32 run's.
TEST_F(TrainerLosses, AutocastRunResumesExactlyAndTracksFloat32) {
  const std::vector<std::string> bf16 = {"train.precision=bf16", "optimizer.lr=1e-3",
                                         "schedule.warmup_steps=0"};
  auto with = [&](std::vector<std::string> v, const std::string& more) {
    v.push_back(more);
    return v;
  };
  const auto fp32 = train("fp32", "", {"optimizer.lr=1e-3", "schedule.warmup_steps=0"});
  const auto straight = train("straight", "", bf16);
  train("split", "", with(bf16, "train.stop_at_step=2"));
  const auto resumed = train("split", "", bf16);
  ASSERT_EQ(straight.size(), 4u);
  for (int64_t step = 1; step <= 4; ++step) {
    ASSERT_TRUE(resumed.count(step)) << step;
    const double loss = straight.at(step).at("loss").get<double>();
    EXPECT_EQ(loss, resumed.at(step).at("loss").get<double>()) << "step " << step;
    const double reference = fp32.at(step).at("loss").get<double>();
    EXPECT_NEAR(loss, reference, 2e-2 * std::abs(reference)) << "step " << step;
    EXPECT_NE(loss, reference) << "step " << step << ": the bf16 run must actually compute in bf16";
  }
}

}  // namespace
}  // namespace l4::train
