// Parameter counts computed from the architecture's shapes alone (no weights are allocated), so that
// `llama4 info` works for Scout/Maverick-sized configs on a laptop.
#pragma once

#include <cstdint>
#include <vector>

#include "config/model_arch.h"

namespace l4::model {

struct LayerSummary {
  bool moe = false;
  bool rope = false;
  int64_t params = 0;         // all parameters of the layer
  int64_t active_params = 0;  // parameters one token passes through
};

struct ParamSummary {
  int64_t text_params = 0;
  int64_t text_active_params = 0;
  int64_t vision_params = 0;  // vision encoder + adapter + projector (0 without a vision tower)
  int64_t total_params() const { return text_params + vision_params; }
  // Parameters a text token passes through (the model card's "17B active"); the vision tower runs
  // once per image tile, not per token, so it is reported separately.
  int64_t active_params() const { return text_active_params; }
  std::vector<LayerSummary> layers;
};

ParamSummary count_params(const config::ModelArch& arch);

}  // namespace l4::model
