// Optimizer parameter groups from parameter names: per-layer learning rates (layer_decay), ordered
// glob rules (first match wins), and the default of no weight decay on norms, biases and embeddings.
// Pure logic on names, so it is tested without building a model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/recipe.h"

namespace l4::train {

struct ParamSetting {
  std::string name;
  int64_t layer_id = 0;  // 0 = embeddings (and the vision tower), N+1 = decoder layer N, L = head
  double lr = 0.0;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  int rule = -1;  // index of the matching param_groups rule, -1 for none
};

struct ParamGroup {
  double lr = 0.0;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  std::vector<std::string> names;  // in the order given
};

// Layer id used by layer_decay: embeddings and vision tower 0, decoder layer N -> N + 1 (capped at
// num_layers), final norm and lm_head num_layers. lr multiplier = layer_decay^(num_layers - id).
int64_t layer_id_of(const std::string& name, int64_t num_layers);

// True for parameters that get no weight decay by default: norms, biases, embeddings.
bool no_decay_by_default(const std::string& name);

// Settings for each trainable parameter name (frozen parameters must not be passed).
std::vector<ParamSetting> resolve_param_settings(const std::vector<std::string>& names,
                                                 const config::OptimizerSection& optimizer,
                                                 int64_t num_layers);

// Parameters with identical (lr, weight_decay, betas) share one optimizer group.
std::vector<ParamGroup> group_settings(const std::vector<ParamSetting>& settings);

// One line per parameter: name, group index, lr, weight decay, rule; for --print-param-groups.
std::string format_param_settings(const std::vector<ParamSetting>& settings,
                                  const config::OptimizerSection& optimizer);

}  // namespace l4::train
