// llama4 export: training checkpoint -> HF model directory (LoRA merged) or PEFT adapter. The checkpoint's
// config snapshot gives the architecture, the base weights (model.hf_dir / model.init) and the LoRA settings.
#include <filesystem>
#include <set>

#include "checkpoint/model_weights.h"
#include "checkpoint/training_checkpoint.h"
#include "cli/commands.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "lora/peft_adapter.h"
#include "model/pretrained.h"

namespace l4::cli {
namespace {

namespace fs = std::filesystem;

checkpoint::Checkpoint open_any(const std::string& path) {
  // A run's checkpoint directory (with `latest`) or one step_N directory.
  if (file_exists((fs::path(path) / "manifest.json").string())) return checkpoint::open_checkpoint(path);
  auto latest = checkpoint::find_latest_valid(path);
  L4_CHECK(latest.has_value(), "--checkpoint {}: no valid checkpoint (expected a step_N directory or a run's "
           "checkpoint directory)", path);
  return *latest;
}

int run_export(const ParsedArgs& args) {
  const std::string ckpt_path = args.require("checkpoint", "export");
  const std::string output = args.require("output", "export");
  const bool peft = args.has("peft");
  const checkpoint::Checkpoint ckpt = open_any(ckpt_path);
  L4_CHECK(ckpt.manifest.contains("config") && ckpt.manifest.at("config").is_string(),
           "{}: manifest.json has no config snapshot", ckpt.path);
  // The snapshot goes through the normal recipe loader (paths in it are as the run saw them).
  const std::string snapshot = (fs::path(output).string() + ".recipe.yaml");
  fs::create_directories(fs::path(snapshot).parent_path().empty() ? "." : fs::path(snapshot).parent_path());
  write_file_atomic(snapshot, ckpt.manifest.at("config").get<std::string>());
  config::Recipe recipe;
  try {
    recipe = config::load_recipe(snapshot);
  } catch (...) {
    fs::remove(snapshot);
    throw;
  }
  fs::remove(snapshot);
  const bool lora_run = recipe.lora.rank > 0;
  L4_CHECK(!peft || lora_run, "{}: --peft needs a LoRA run (lora.rank is 0 in its config)", ckpt.path);
  const std::string base_dir = !recipe.model.hf_dir.empty() ? recipe.model.hf_dir : recipe.model.init;

  model::Llama4ForCausalLM model(recipe.arch.text_config);
  if (!base_dir.empty()) {
    model::load_text_weights(*model, checkpoint::ModelWeights::open_dir(base_dir));
  } else {
    L4_CHECK(!lora_run, "{}: a LoRA run needs its base weights (model.hf_dir or model.init)", ckpt.path);
    model->reset_parameters(static_cast<uint64_t>(recipe.train.seed));
  }
  lora::LoraOptions options;
  lora::LoraInjection injection;
  if (lora_run) {
    options = lora::options_from_recipe(recipe.lora, recipe.source);
    options.base_dtype = at::kFloat;  // exporting: full precision
    injection = lora::apply_lora(*model, options, static_cast<uint64_t>(recipe.train.seed));
  }
  // Every trainable tensor of the run comes from the checkpoint.
  const std::vector<std::string> saved = ckpt.names();
  const std::set<std::string> saved_set(saved.begin(), saved.end());
  torch::NoGradGuard no_grad;
  int64_t loaded = 0;
  for (auto& item : model->named_parameters()) {
    const bool trainable = lora_run ? item.value().requires_grad() : true;
    if (!saved_set.count(item.key())) {
      L4_CHECK(!trainable || (!lora_run && !base_dir.empty()), "{}: tensor '{}' is missing", ckpt.path,
               item.key());
      continue;
    }
    const at::Tensor value = ckpt.read(item.key());
    L4_CHECK(value.sizes() == item.value().sizes(), "{}: '{}' has shape {}, the model {}", ckpt.path,
             item.key(), c10::str(value.sizes()), c10::str(item.value().sizes()));
    item.value().copy_(value);
    ++loaded;
  }
  L4_LOG_INFO("{}: {} tensors read (step {})", ckpt.path, loaded, ckpt.step);
  if (peft) {
    lora::write_peft_adapter(*model, options, injection, output, base_dir);
  } else if (!base_dir.empty() && file_exists((fs::path(base_dir) / "config.json").string())) {
    lora::write_merged_model(*model, base_dir, output, recipe.tokenizer.path);
  } else {
    // No HF base (e.g. pretraining from configs/*.yaml): config.json is written from the architecture.
    lora::write_text_model(*model, recipe.arch, output, recipe.tokenizer.path);
  }
  return 0;
}

}  // namespace

Command make_export_command() {
  return {{"export",
           "training checkpoint -> HF model or PEFT adapter",
           "--checkpoint DIR --output DIR [--peft]",
           {{"checkpoint", "DIR", "step_N checkpoint directory (or a run's checkpoint dir: its newest)"},
            {"output", "DIR", "output directory"},
            {"peft", "", "write a PEFT adapter instead of a full (merged) model"}},
           /*accepts_overrides=*/false},
          run_export};
}

}  // namespace l4::cli
