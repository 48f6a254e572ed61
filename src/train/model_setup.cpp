#include "train/model_setup.h"

#include "checkpoint/model_weights.h"
#include "core/error.h"
#include "core/log.h"
#include "lora/lora_modules.h"
#include "model/pretrained.h"
#include "train/multimodal_setup.h"

namespace l4::train {
namespace {

// LoRA (lora.rank > 0): wraps the targeted layers and freezes every other parameter, so only the adapter
// tensors train, get optimizer state and go into checkpoints.
void add_lora(const config::Recipe& recipe, ModelSetup& setup) {
  if (recipe.lora.rank <= 0) return;
  lora::LoraOptions options = lora::options_from_recipe(recipe.lora, recipe.source);
  options.expert_begin = setup.expert_begin;
  lora::apply_lora(*setup.model, options, static_cast<uint64_t>(recipe.train.seed));
}

}  // namespace

namespace {

// This rank's routed experts: [ep_rank * E / ep, (ep_rank + 1) * E / ep).
model::ExpertShard expert_shard(const parallel::ProcessGrid& grid) {
  return {grid.expert_begin(), grid.experts_per_rank()};
}

// Rows go through the expert dispatch when experts are sharded or a capacity factor drops overflow; a
// dropless single-rank run keeps the model's direct path.
void install_expert_runner(ModelSetup& setup, const config::Recipe& recipe,
                           const parallel::ProcessGrid& grid) {
  setup.expert_begin = grid.expert_begin();
  setup.local_experts = grid.experts_per_rank();
  if (grid.layout().ep == 1 && recipe.parallel.capacity_factor <= 0) return;
  parallel::DispatchOptions options;
  options.capacity_factor = recipe.parallel.capacity_factor;
  setup.expert_runner = model::install_expert_parallel(*setup.model, grid.ep_comm(), options);
}

}  // namespace

bool ModelSetup::is_expert_param(const std::string& name) { return name.find(".experts.") != std::string::npos; }

ModelSetup build_model(const config::Recipe& recipe, const parallel::ProcessGrid& grid) {
  const config::TextConfig& text = recipe.arch.text_config;
  ModelSetup setup;
  model::ModelOptions options;
  options.dtype = recipe.model.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  options.experts = expert_shard(grid);
  setup.model = model::Llama4ForCausalLM(text, options);
  setup.expert_begin = grid.expert_begin();  // LoRA sizes and seeds its expert tensors from the shard
  setup.local_experts = grid.experts_per_rank();
  const std::string weights_dir = !recipe.model.hf_dir.empty() ? recipe.model.hf_dir : recipe.model.init;
  if (!weights_dir.empty()) {
    // Every tensor is loaded (checked first); under expert parallelism only this rank's expert rows.
    L4_LOG_INFO("loading weights from {}", weights_dir);
    model::load_text_weights(*setup.model, checkpoint::ModelWeights::open_dir(weights_dir));
  } else {
    // Layout-independent init: every (world, ep) layout starts from the single-process weights.
    setup.model->init_parameters(static_cast<uint64_t>(recipe.train.seed));
  }
  add_lora(recipe, setup);
  setup.model->set_router_loss({recipe.train.aux_loss_coef, recipe.train.z_loss_coef});
  install_expert_runner(setup, recipe, grid);  // after LoRA: the exchange wraps the LoRA-aware local runner
  for (const auto& item : setup.model->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    setup.trainable.push_back({item.key(), item.value()});
    setup.sync.push_back({item.key(), item.value(),
                          ModelSetup::is_expert_param(item.key()) ? parallel::ParamKind::kExpert : parallel::ParamKind::kReplicated});
  }
  attach_vision(setup, recipe, options);
  return setup;
}

}  // namespace l4::train
