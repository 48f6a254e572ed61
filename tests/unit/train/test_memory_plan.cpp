// `llama4 plan`'s parameter, gradient and optimizer bytes equal what the trainer's own model holds: the
// model is built (and LoRA injected, experts sharded) exactly as training builds it, and its tensors counted.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "common/temp_dir.h"
#include "config/recipe.h"
#include "core/error.h"
#include "lora/lora_modules.h"
#include "model/build.h"
#include "model/llama4.h"
#include "model/placed.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "restore/restore.h"
#include "train/memory_plan.h"
#include "train/optimizer_setup.h"
#include "train/param_groups.h"

namespace l4::train {
namespace {

const std::string kTiny = std::string(L4_SOURCE_DIR) + "/configs/tiny.yaml";

// `model_keys`: more lines of the model section ("  dtype: bfloat16\n"); `sections`: other sections.
config::Recipe tiny_recipe(const testing::TempDir& dir, const std::string& sections,
                           const std::string& model_keys = "") {
  const std::string path =
      dir.write("recipe.yaml", "model:\n  config: " + kTiny + "\n" + model_keys + sections);
  return config::load_recipe(path);
}

struct Counted {
  int64_t weights = 0, trainable = 0, experts = 0;
};

Counted count(const std::vector<at::Tensor>& params) {
  Counted c;
  for (const auto& p : params) {
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    c.weights += bytes;
    if (p.requires_grad()) c.trainable += bytes;
  }
  return c;
}

// AdamW state bytes after one real optimizer step over the trainable parameters.
int64_t optimizer_bytes(const std::vector<NamedParam>& trainable, const config::Recipe& recipe) {
  std::vector<std::string> names;
  for (const auto& p : trainable) {
    names.push_back(p.name);
    p.param.mutable_grad() = torch::zeros_like(p.param);
  }
  const auto settings =
      resolve_param_settings(names, recipe.optimizer, recipe.arch.text_config.num_hidden_layers);
  OptimizerSetup optimizer(trainable, settings, recipe.optimizer.eps);
  optimizer.step();
  int64_t bytes = 0;
  for (const auto& p : trainable) {
    const auto state = optimizer.state(p.name);
    EXPECT_TRUE(state.has_value()) << p.name;
    if (!state) continue;
    bytes += state->exp_avg.numel() * static_cast<int64_t>(state->exp_avg.element_size()) +
             state->exp_avg_sq.numel() * static_cast<int64_t>(state->exp_avg_sq.element_size());
    const at::Tensor master = optimizer.master(p.name);  // fp32 copy of a 16-bit parameter
    if (master.defined()) bytes += master.numel() * static_cast<int64_t>(master.element_size());
  }
  return bytes;
}

// One process builds the model as training does (vision tower and projector included).
void expect_plan_matches_built_model(const std::string& sections, const std::string& model_keys = "") {
  testing::TempDir dir;
  const config::Recipe recipe = tiny_recipe(dir, sections, model_keys);
  parallel::SelfCommunicator self;
  const parallel::ProcessGrid grid(self, 1, recipe.arch.text_config.num_local_experts);
  const model::Llama4 model = model::build(recipe.arch, restore::model_options(recipe, grid));
  const std::vector<at::Tensor> params = model->parameters();
  std::vector<NamedParam> trainable_params;
  for (const model::PlacedParam& p : model::trainable_parameters(*model)) {
    trainable_params.push_back({p.name, p.param, p.placement});
  }
  const Counted counted = count(params);
  const MemoryPlan plan = plan_memory(plan_inputs_from_recipe(recipe, 1));
  EXPECT_EQ(plan.weights, counted.weights);
  EXPECT_EQ(plan.gradients, counted.trainable);
  int64_t numel = 0, trainable = 0;
  for (const auto& p : params) {
    numel += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  EXPECT_EQ(plan.params, numel);
  EXPECT_EQ(plan.trainable_params, trainable);
  EXPECT_EQ(plan.optimizer, optimizer_bytes(trainable_params, recipe));
}

TEST(MemoryPlanTest, FullFineTuningBytesEqualTheBuiltModel) {
  expect_plan_matches_built_model("");
}

TEST(MemoryPlanTest, Bfloat16ModelBytesEqualTheBuiltModel) {
  expect_plan_matches_built_model("", "  dtype: bfloat16\n  freeze_vision: true\n");
}

TEST(MemoryPlanTest, LoraWithBfloat16BaseBytesEqualTheBuiltModel) {
  expect_plan_matches_built_model(
      "lora: {rank: 4, targets: [q_proj, v_proj, o_proj, shared_expert, experts, gate_proj], "
      "base_dtype: bfloat16}\n",
      "  freeze_vision: true\n");
}

TEST(MemoryPlanTest, LoraOnOneExpertTensorBytesEqualTheBuiltModel) {
  expect_plan_matches_built_model("lora: {rank: 2, targets: [k_proj, experts.down_proj]}\n");
}

// Expert parallelism: each rank holds E/ep experts (and their LoRA tensors); replicated tensors do not
// change with the world size, and ZeRO-1 divides their optimizer state by it.
TEST(MemoryPlanTest, ExpertShardsEqualTheBuiltShard) {
  testing::TempDir dir;
  const config::Recipe recipe =
      tiny_recipe(dir,
                  "lora: {rank: 4, targets: [q_proj, shared_expert, experts], base_dtype: bfloat16}\n"
                  "train: {global_batch: 8, micro_batch: 1}\n");
  const int64_t experts = recipe.arch.text_config.num_local_experts;
  int64_t replicated_bytes = -1;
  for (int64_t ep : {1, 2, 4}) {
    model::ModelOptions options;
    options.experts = {0, experts / ep};
    model::Llama4 text(recipe.arch.text_config, options);
    lora::LoraOptions lora_options = lora::options_from_recipe(recipe.lora, recipe.source);
    lora::apply_lora(*text, lora_options, 1);
    int64_t expert_bytes = 0, text_bytes = 0;
    for (const model::PlacedParam& p : model::placed_parameters(*text)) {
      const int64_t bytes = p.param.numel() * static_cast<int64_t>(p.param.element_size());
      text_bytes += bytes;
      if (p.placement.is_sharded()) expert_bytes += bytes;
    }
    for (int64_t world : {ep, 2 * ep}) {
      PlanInputs inputs = plan_inputs_from_recipe(recipe, world);
      inputs.expert_parallel = ep;
      inputs.arch.vision_config.reset();  // the text model alone, as built here
      const MemoryPlan plan = plan_memory(inputs);
      EXPECT_EQ(plan.local_experts, experts / ep);
      EXPECT_EQ(plan.weights, text_bytes) << "ep " << ep << " world " << world;
      EXPECT_EQ(plan.weights_experts, expert_bytes) << "ep " << ep;
      if (replicated_bytes < 0) replicated_bytes = plan.weights_replicated;
      EXPECT_EQ(plan.weights_replicated, replicated_bytes) << "replicated tensors never shard";
      inputs.zero = 1;
      const MemoryPlan zero = plan_memory(inputs);
      if (world > 1) {
        EXPECT_LT(zero.optimizer, plan.optimizer);
      }
      EXPECT_EQ(plan.accumulation, 8 / world);
    }
  }
}

TEST(MemoryPlanTest, RecomputationAndChunkedLossOnlyShrinkTheirTerms) {
  testing::TempDir dir;
  const config::Recipe recipe =
      tiny_recipe(dir, "data: {seq_len: 256}\ntrain: {micro_batch: 2, global_batch: 2}\n");
  PlanInputs inputs = plan_inputs_from_recipe(recipe, 1);
  const MemoryPlan base = plan_memory(inputs);
  EXPECT_EQ(base.activations, base.activations_none);
  EXPECT_LT(base.activations_full, base.activations_moe);
  EXPECT_LT(base.activations_moe, base.activations_none);
  inputs.activation_checkpointing = "full";
  inputs.chunked_cross_entropy = true;
  inputs.cross_entropy_chunk = 64;
  const MemoryPlan lean = plan_memory(inputs);
  EXPECT_EQ(lean.activations, base.activations_full);
  EXPECT_EQ(lean.loss * 2 * 256, base.loss * 64);  // 64 of 512 tokens at a time
  EXPECT_EQ(lean.weights, base.weights);
  EXPECT_LT(lean.total, base.total);
  EXPECT_GT(lean.flops_per_rank, base.flops_per_rank);  // the recomputed forward
  EXPECT_DOUBLE_EQ(lean.flops_per_step, base.flops_per_step);
}

// The plan reads train.activation_checkpointing from the recipe.
TEST(MemoryPlanTest, RecipeSelectsTheRecomputation) {
  testing::TempDir dir;
  for (const std::string mode : {"moe", "full"}) {
    const config::Recipe recipe = tiny_recipe(
        dir, "data: {seq_len: 256}\ntrain: {micro_batch: 2, global_batch: 2, activation_checkpointing: " +
                 mode + "}\n");
    const PlanInputs inputs = plan_inputs_from_recipe(recipe, 1);
    EXPECT_EQ(inputs.activation_checkpointing, mode);
    const MemoryPlan plan = plan_memory(inputs);
    EXPECT_EQ(plan.activations, mode == "full" ? plan.activations_full : plan.activations_moe);
  }
}

// A GPU rank fills its parameters on the device tensor by tensor: the host holds the largest tensor (its own
// rows of an expert tensor), not the model; a CPU rank holds its model.
TEST(MemoryPlanTest, HostRamWhileLoadingIsOneTensorOnGpuRanks) {
  testing::TempDir dir;
  std::map<std::string, double> beyond;  // host_load minus what each device's rank holds: the runtime
  double largest = 0, all = 0;
  for (const char* device : {"cpu", "cuda"}) {
    const config::Recipe recipe =
        tiny_recipe(dir, fmt::format("parallel: {{expert_parallel: 2}}\ntrain: {{device: {}}}\n", device));
    const PlanInputs inputs = plan_inputs_from_recipe(recipe, 2);
    largest = all = 0;
    for (const PlanTensor& t : plan_tensors(inputs)) {
      largest = std::max(largest, static_cast<double>(t.numel) * t.dtype_bytes);
      all += static_cast<double>(t.numel) * t.dtype_bytes;
    }
    const MemoryPlan plan = plan_memory(inputs);
    EXPECT_EQ(static_cast<double>(plan.weights), all) << device;
    beyond[device] = static_cast<double>(plan.host_load) - (std::string(device) == "cuda" ? largest : all);
  }
  EXPECT_LT(largest, all / 2);  // the embedding, in this tiny model
  EXPECT_GT(beyond["cpu"], 0);
  EXPECT_NEAR(beyond["cuda"], beyond["cpu"], 1.0);
}

TEST(MemoryPlanTest, JsonHasEveryFigure) {
  testing::TempDir dir;
  const config::Recipe recipe =
      tiny_recipe(dir, "parallel: {expert_parallel: 2}\ntrain: {global_batch: 8, micro_batch: 2}\n");
  const MemoryPlan plan = plan_memory(plan_inputs_from_recipe(recipe, 4));
  const auto json = nlohmann::json::parse(plan_to_json(plan));
  for (const char* key : {"weights", "weights_replicated", "weights_experts", "gradients", "optimizer",
                          "activations", "activations_none", "activations_moe", "activations_full",
                          "weight_copies", "loss", "backward_workspace", "grad_buckets", "all_to_all",
                          "allocator_slack", "runtime", "total", "host_load"}) {
    ASSERT_TRUE(json.at("per_rank_bytes").contains(key)) << key;
    EXPECT_GE(json["per_rank_bytes"][key].get<int64_t>(), 0) << key;
  }
  for (const char* key :
       {"world", "expert_parallel", "local_experts", "seq_len", "micro_batch", "accumulation", "device",
        "model_dtype", "precision", "lora_rank", "activation_checkpointing", "zero", "chunked_cross_entropy",
        "fp32_master_weights", "gpu_memory_gb"}) {
    EXPECT_TRUE(json.at("inputs").contains(key)) << key;
  }
  EXPECT_EQ(json["inputs"]["world"], 4);
  EXPECT_EQ(json["inputs"]["local_experts"], 2);
  EXPECT_GT(json["per_rank_bytes"]["all_to_all"].get<int64_t>(), 0);
  EXPECT_GT(json["all_to_all_share"].get<double>(), 0.0);
  EXPECT_LT(json["all_to_all_share"].get<double>(), 1.0);
  EXPECT_GT(json["flops_per_step"].get<double>(), 0.0);
  EXPECT_TRUE(json["fits"].get<bool>());
  const auto& b = json["per_rank_bytes"];
  EXPECT_GE(b["total"].get<int64_t>(),
            b["weights"].get<int64_t>() + b["optimizer"].get<int64_t>() + b["activations"].get<int64_t>());
}

void expect_error(const PlanInputs& inputs, const std::string& fragment) {
  try {
    plan_memory(inputs);
    ADD_FAILURE() << "no error; expected one mentioning: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(MemoryPlanTest, BadLayoutsAreClearErrors) {
  testing::TempDir dir;
  const config::Recipe recipe =
      tiny_recipe(dir, "parallel: {expert_parallel: 2}\ntrain: {global_batch: 12, micro_batch: 1}\n");
  expect_error(plan_inputs_from_recipe(recipe, 3), "expert_parallel=2 must divide the world size 3");
  expect_error(plan_inputs_from_recipe(recipe, 8), "train.global_batch=12 must be a multiple");
  PlanInputs inputs = plan_inputs_from_recipe(recipe, 2);
  inputs.activation_checkpointing = "some";
  expect_error(inputs, "must be none, moe or full");
  inputs = plan_inputs_from_recipe(recipe, 2);
  inputs.zero = 3;
  expect_error(inputs, "ZeRO stage must be 0, 1 or 2");
  inputs = plan_inputs_from_recipe(recipe, 2);
  inputs.expert_parallel = 8;
  inputs.world = 8;
  inputs.global_batch = 8;
  expect_error(inputs, "must divide num_local_experts=4");
  inputs = plan_inputs_from_recipe(recipe, 2);
  inputs.lora_rank = 4;
  inputs.lora_targets = {"q_proj", "wq"};
  expect_error(inputs, "'wq' select(s) no layer");
}

}  // namespace
}  // namespace l4::train
