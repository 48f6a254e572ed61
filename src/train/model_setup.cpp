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

bool ModelSetup::is_expert_param(const std::string& name) { return name.find(".experts.") != std::string::npos; }

ModelSetup build_model(const config::Recipe& recipe, const parallel::ProcessGrid& grid) {
  const config::TextConfig& text = recipe.arch.text_config;
  L4_CHECK(grid.layout().ep == 1,
           "{}: parallel.expert_parallel={} is not supported by this trainer build yet; use 1", recipe.source,
           grid.layout().ep);
  ModelSetup setup;
  model::ModelOptions options;
  options.dtype = recipe.model.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  setup.model = model::Llama4ForCausalLM(text, options);
  setup.model->reset_parameters(static_cast<uint64_t>(recipe.train.seed));
  const std::string weights_dir = !recipe.model.hf_dir.empty() ? recipe.model.hf_dir : recipe.model.init;
  if (!weights_dir.empty()) {
    L4_LOG_INFO("loading weights from {}", weights_dir);
    model::load_text_weights(*setup.model, checkpoint::ModelWeights::open_dir(weights_dir));
  }
  add_lora(recipe, setup);
  setup.model->set_router_loss({recipe.train.aux_loss_coef, recipe.train.z_loss_coef});
  setup.local_experts = text.num_local_experts;
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
