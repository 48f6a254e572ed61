// Which channel each collective of a training run uses: a run on a process grid whose host and device
// channels record their traffic. Control traffic (stop agreement, loss totals, checkpoint strings) must go
// over the host channel in CPU scalars; gradient buckets and the gradient norm over the device channel.
// On a GPU run the device channel is NCCL, which rejects host tensors: this is the CPU-side proof that
// the trainer keeps the two apart. (The expert exchange takes the EP group, split from the device channel,
// by construction: ProcessGrid has no host-side EP group.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/recipe.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"
#include "unit/data/synthetic_dataset.h"

namespace l4::train {
namespace {

struct Call {
  std::string op;
  at::ScalarType dtype;
  int64_t numel;
};

// A one-rank communicator that records every collective (and those of its splits) under one log.
class RecordingCommunicator final : public parallel::Communicator {
 public:
  explicit RecordingCommunicator(std::shared_ptr<std::vector<Call>> log) : log_(std::move(log)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "recording"; }
  void all_reduce(at::Tensor& t, parallel::ReduceOp op) override {
    record("all_reduce", t);
    self_.all_reduce(t, op);
  }
  at::Tensor all_gather(const at::Tensor& t) override {
    record("all_gather", t);
    return self_.all_gather(t);
  }
  at::Tensor reduce_scatter(const at::Tensor& t, parallel::ReduceOp op) override {
    record("reduce_scatter", t);
    return self_.reduce_scatter(t, op);
  }
  at::Tensor all_to_all_v(const at::Tensor& t, const std::vector<int64_t>& send,
                          const std::vector<int64_t>& recv) override {
    record("all_to_all_v", t);
    return self_.all_to_all_v(t, send, recv);
  }
  void broadcast(at::Tensor& t, int root) override {
    record("broadcast", t);
    self_.broadcast(t, root);
  }
  void barrier() override { log_->push_back({"barrier", at::kByte, 0}); }
  [[noreturn]] void abort(int code) override { self_.abort(code); }
  std::unique_ptr<Communicator> split(int, int) override {
    return std::make_unique<RecordingCommunicator>(log_);
  }

 private:
  void record(const char* op, const at::Tensor& t) { log_->push_back({op, t.scalar_type(), t.numel()}); }
  std::shared_ptr<std::vector<Call>> log_;
  parallel::SelfCommunicator self_;
};

std::string write_recipe(const std::string& dir, const std::string& data) {
  const std::string path = dir + "/recipe.yaml";
  std::ofstream(path)
      << "model:\n"
         "  text_config: {vocab_size: 1000, hidden_size: 16, intermediate_size: 16,\n"
         "    intermediate_size_mlp: 32, num_hidden_layers: 2, num_attention_heads: 2,\n"
         "    num_key_value_heads: 1, head_dim: 8, num_local_experts: 2, num_experts_per_tok: 1,\n"
         "    interleave_moe_layer_step: 2, attention_chunk_size: 8, pad_token_id: 999}\n"
         "data: {train: "
      << data
      << ", seq_len: 32}\n"
         "train: {steps: 2, global_batch: 2, micro_batch: 1, seed: 3}\n"
         "checkpoint: {dir: "
      << dir
      << "/ckpt}\n"
         "logging: {run_dir: "
      << dir << "/run, tensorboard: false, peak_tflops: 1.0}\n";
  return path;
}

TEST(TrainerChannels, ControlGoesToTheHostTensorsToTheDevice) {
  const std::string dir = data::testing::fresh_dir("trainer_channels");
  std::filesystem::create_directories(dir);
  data::testing::SyntheticSpec spec;
  spec.docs = 20;
  data::testing::write_dataset(dir + "/data", data::testing::make_documents(spec));
  const config::Recipe recipe = config::load_recipe(write_recipe(dir, dir + "/data"));

  auto host_log = std::make_shared<std::vector<Call>>();
  auto device_log = std::make_shared<std::vector<Call>>();
  RecordingCommunicator host(host_log);
  const parallel::ProcessGrid grid(host, std::make_unique<RecordingCommunicator>(device_log), 1,
                                   recipe.arch.text_config.num_local_experts);
  ASSERT_EQ(run_training(recipe, grid, at::kCPU), 0);

  std::map<std::string, int> host_ops, device_ops;
  for (const Call& c : *host_log) {
    ++host_ops[c.op];
    // Control traffic: integer flags, double totals, bytes of strings; never a float gradient or activation.
    EXPECT_TRUE(c.dtype == at::kLong || c.dtype == at::kDouble || c.dtype == at::kByte ||
                c.dtype == at::kChar)
        << c.op << " of " << c.numel << " " << c.dtype << " on the host channel";
  }
  int float_reduces = 0;
  for (const Call& c : *device_log) {
    ++device_ops[c.op];
    // Strings and flags are control traffic.
    EXPECT_NE(c.dtype, at::kByte) << c.op << " of " << c.numel << " bytes on the device channel";
    float_reduces += c.op == "all_reduce" && c.dtype == at::kFloat;
  }
  // Stop agreement and loss totals each step, checkpoint strings at the end.
  EXPECT_GE(host_ops["all_reduce"], 4);
  EXPECT_GE(host_ops["all_gather"], 1);
  EXPECT_EQ(host_ops["all_to_all_v"], 0);
  // Gradient buckets each step.
  EXPECT_GE(float_reduces, 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace l4::train
