#include "model/build.h"

#include "checkpoint/model_weights.h"
#include "core/error.h"
#include "core/log.h"
#include "model/expert_parallel.h"
#include "model/placed.h"
#include "model/recompute.h"
#include "model/weights.h"

namespace l4::model {

Llama4 build(const config::ModelArch& arch, const ModelOptions& options) {
  std::optional<checkpoint::ModelWeights> weights;
  bool weights_have_vision = false;
  if (options.fill_weights && !options.weights_dir.empty()) {
    L4_LOG_INFO("loading weights from {}", options.weights_dir);
    weights.emplace(checkpoint::ModelWeights::open_dir(options.weights_dir));
    weights_have_vision = check_weights(arch, options.vision, *weights);  // before allocating anything
  }
  Llama4 model(arch, options);
  if (weights) {
    // A text-only checkpoint leaves the tower and projector to the seeded init.
    if (model->has_vision()) {
      model->vision_model->reset_parameters(options.seed + 1);
      model->multi_modal_projector->reset_parameters(arch.text_config.initializer_range, options.seed + 2);
    }
    copy_weights(*model, *weights, weights_have_vision);
  } else if (options.fill_weights) {
    model->init_parameters(options.seed);
  }
  for (const Adapter& adapt : options.adapters) adapt(*model);
  model->set_freeze_vision(options.freeze_vision);
  model->set_router_loss(options.router_loss);
  // Before the exchange: `moe` recomputes the local expert computation only, never the all-to-all.
  if (options.recompute == config::ActivationCheckpointing::kMoe) recompute_experts(*model);
  model->model->recompute_layers = options.recompute == config::ActivationCheckpointing::kFull;
  if (options.expert_group != nullptr) {
    // After the adapters: the exchange wraps each layer's current (e.g. LoRA-aware) local computation.
    model->set_expert_exchange(install_expert_parallel(*model, *options.expert_group, options.dispatch));
  }
  if (model->has_vision()) {
    int64_t count = 0;
    for (const auto& p : model->multi_modal_projector->parameters())
      count += p.requires_grad() ? p.numel() : 0;
    for (const auto& p : model->vision_model->parameters()) count += p.requires_grad() ? p.numel() : 0;
    L4_LOG_INFO("vision tower {}; {} vision/projector parameters train",
                options.freeze_vision ? "frozen" : "trained", count);
  }
  return model;
}

Llama4 load_pretrained(const std::string& dir, ModelOptions options) {
  options.weights_dir = dir;
  return build(config::load_model_arch(dir), options);
}

std::vector<PlacedParam> trainable_parameters(const Llama4Impl& model) {
  std::vector<PlacedParam> out;
  for (PlacedParam& p : placed_parameters(model)) {
    if (p.param.requires_grad()) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace l4::model
