#include "restore/restore.h"

#include <algorithm>
#include <filesystem>

#include "checkpoint/model_weights.h"
#include "config/model_arch.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/strings.h"
#include "lora/peft_adapter.h"
#include "model/build.h"
#include "model/dtype.h"
#include "model/placed.h"
#include "restore/model_memory.h"

namespace l4::restore {
namespace {

namespace fs = std::filesystem;

// The first line where two architecture dumps differ, for "incompatible checkpoint" errors.
std::string first_difference(const std::string& saved, const std::string& current) {
  const auto a = split(saved, '\n'), b = split(current, '\n');
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string x = i < a.size() ? a[i] : "(nothing)", y = i < b.size() ? b[i] : "(nothing)";
    if (x != y) return fmt::format("checkpoint has '{}', recipe has '{}'", x, y);
  }
  return "";
}

}  // namespace

std::string weights_dir(const config::Recipe& recipe) {
  return !recipe.model.hf_dir.empty() ? recipe.model.hf_dir : recipe.model.init;
}

model::ModelOptions model_options(const config::Recipe& recipe, const parallel::ProcessGrid& grid,
                                  const at::Device& device) {
  model::ModelOptions options;
  options.dtype = model::scalar_type(recipe.model.dtype);
  options.device = device;
  options.experts = {grid.expert_begin(), grid.experts_per_rank()};
  options.weights_dir = weights_dir(recipe);
  options.seed = static_cast<uint64_t>(recipe.train.seed);
  options.freeze_vision = recipe.model.freeze_vision;
  options.router_loss = {recipe.train.aux_loss_coef, recipe.train.z_loss_coef};
  options.recompute = recipe.train.activation_checkpointing;
  if (recipe.lora.rank > 0) {
    options.adapters.push_back(
        lora::lora_adapter(lora::options_from_recipe(recipe.lora, recipe.source), options.seed));
  }
  // Rows go through the expert dispatch when experts are sharded or a capacity factor drops overflow; a
  // dropless single-rank run keeps the model's direct path.
  if (grid.layout().ep > 1 || recipe.parallel.capacity_factor > 0) {
    options.expert_group = &grid.ep_comm();
    options.dispatch.capacity_factor = recipe.parallel.capacity_factor;
  }
  return options;
}

std::string resume_path(const config::CheckpointSection& checkpoint) {
  if (checkpoint.resume == "none") return "";
  if (checkpoint.resume != "auto") return checkpoint.resume;
  if (checkpoint.dir.empty()) return "";
  const auto latest = checkpoint::find_latest_valid(checkpoint.dir);
  return latest ? latest->path : "";
}

checkpoint::Checkpoint open_checkpoint(const std::string& path, const config::ModelArch* arch,
                                       checkpoint::Verify verify) {
  std::optional<checkpoint::Checkpoint> ckpt;
  if (file_exists((fs::path(path) / "manifest.json").string())) {
    ckpt = checkpoint::open_checkpoint(path, verify);
  } else {
    ckpt = checkpoint::find_latest_valid(path);
    L4_CHECK(ckpt.has_value(),
             "{}: no valid checkpoint (expected a step_N directory or a run's checkpoint directory)", path);
  }
  if (arch != nullptr) {
    const std::string saved_arch = ckpt->manifest.at("layout").value("arch", "");
    const std::string difference = first_difference(saved_arch, config::model_arch_to_yaml(*arch));
    L4_CHECK(difference.empty(), "{}: checkpoint is for another architecture: {}", ckpt->path, difference);
  }
  return std::move(*ckpt);
}

void ModelState::save_state(checkpoint::StateWriter& out) const {
  for (const model::PlacedParam& p : model::trainable_parameters(model_))
    out.tensor(p.name, p.param, p.placement);
}

void ModelState::load_state(const checkpoint::StateReader& in) {
  torch::NoGradGuard no_grad;
  for (const model::PlacedParam& p : model::trainable_parameters(model_)) {
    L4_CHECK(in.has_tensor(p.name), "{}: the checkpoint has no tensor '{}', which this model trains",
             in.path(), p.name);
    const at::Tensor value = in.tensor(p.name, p.placement, p.param.dim() > 0 ? p.param.size(0) : -1);
    L4_CHECK(value.sizes() == p.param.sizes(), "{}: '{}' has shape {} in the checkpoint, {} in the model",
             in.path(), p.name, c10::str(value.sizes()), c10::str(p.param.sizes()));
    p.param.copy_(value);
  }
}

std::vector<std::string> load_matching_weights(const checkpoint::StateReader& in, model::Llama4Impl& model) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> skipped;
  for (const model::PlacedParam& p : model::trainable_parameters(model)) {
    const int64_t rows = p.param.dim() > 0 ? p.param.size(0) : -1;
    if (!in.has_tensor(p.name)) {
      skipped.push_back(p.name);
      continue;
    }
    const at::Tensor value = in.tensor(p.name, p.placement, rows);
    if (value.sizes() != p.param.sizes()) {
      skipped.push_back(p.name);
      continue;
    }
    p.param.copy_(value);
  }
  return skipped;
}

void load_trained(const checkpoint::Checkpoint& ckpt, model::Llama4Impl& model) {
  ModelState(model).load_state(checkpoint::StateReader(ckpt, 0, 1));
}

RestoredModel from_recipe(const config::Recipe& recipe, const std::string& checkpoint_path,
                          const at::Device& device) {
  parallel::SelfCommunicator self;
  const parallel::ProcessGrid grid(self, 1, recipe.arch.text_config.num_local_experts);
  RestoredModel out;
  out.arch = recipe.arch;
  model::ModelOptions options = model_options(recipe, grid, device);
  options.expert_group = nullptr;  // every expert on this process, dropless
  if (device.is_cpu() && !recipe.train.skip_memory_check) {
    check_model_memory(recipe.arch, recipe.arch.vision_config.has_value(),
                       static_cast<int>(c10::elementSize(options.dtype)), recipe.source,
                       available_host_memory(),
                       "set train.skip_memory_check: true (or L4_SKIP_MEMORY_CHECK=1) to load it anyway");
  }
  out.model = model::build(recipe.arch, options);
  if (recipe.lora.rank > 0) out.lora = lora::options_from_recipe(recipe.lora, recipe.source);
  out.base_dir = weights_dir(recipe);
  out.tokenizer = recipe.tokenizer.path;
  if (!checkpoint_path.empty()) {
    const checkpoint::Checkpoint ckpt = open_checkpoint(checkpoint_path, &recipe.arch);
    load_trained(ckpt, *out.model);
    out.checkpoint = ckpt.path;
    out.step = ckpt.step;
    L4_LOG_INFO("{} trained tensors from {} (step {})", model::trainable_parameters(*out.model).size(),
                ckpt.path, ckpt.step);
  }
  return out;
}

RestoredModel from_checkpoint(const std::string& path) {
  const checkpoint::Checkpoint ckpt = open_checkpoint(path);
  L4_CHECK(ckpt.manifest.contains("config") && ckpt.manifest.at("config").is_string(),
           "{}: manifest.json has no config snapshot", ckpt.path);
  // The snapshot goes through the normal recipe loader (paths in it are as the run saw them); one process,
  // and frozen base weights in full precision (exports fold LoRA into them).
  const config::Recipe recipe = config::parse_recipe(
      ckpt.manifest.at("config").get<std::string>(), ckpt.path + "/manifest.json (config)",
      {"parallel.expert_parallel=1", "lora.base_dtype=float32"});
  return from_recipe(recipe, ckpt.path);
}

RestoredModel from_hf_dir(const std::string& dir, const std::string& adapter_dir, const at::Device& device,
                          bool vision, at::ScalarType dtype) {
  RestoredModel out;
  model::ModelOptions options;
  options.device = device;
  options.dtype = dtype;
  options.vision = vision;
  if (device.is_cpu()) {
    check_model_memory(config::load_model_arch(dir), vision, static_cast<int>(c10::elementSize(dtype)),
                       (fs::path(dir) / "config.json").string(), available_host_memory(),
                       "set L4_SKIP_MEMORY_CHECK=1 to load it anyway");
  }
  out.model = model::load_pretrained(dir, options);
  out.arch = out.model->arch();
  out.base_dir = dir;
  out.tokenizer = dir;
  if (!adapter_dir.empty()) out.lora = lora::load_peft_adapter(*out.model, adapter_dir);
  return out;
}

}  // namespace l4::restore
