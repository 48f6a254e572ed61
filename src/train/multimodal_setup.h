// The multimodal part of the training model: for architectures with a vision_config, the text model that
// build_model made is wrapped into a Llama4ForConditionalGeneration (vision tower + projector, early
// fusion of the batch's image tiles).
#pragma once

#include "config/recipe.h"
#include "model/llama4_model.h"

namespace l4::train {

struct ModelSetup;

// Adds the vision tower and projector around setup.model (seeded HF init, or the tensors of the multimodal
// checkpoint in model.hf_dir / model.init; a text-only checkpoint leaves them at their init), applies
// model.freeze_vision (the tower's parameters stop requiring grad), and appends the trainable ones
// (vision_model.*, multi_modal_projector.*: canonical checkpoint names) to setup.trainable and setup.sync.
// No-op without a vision_config.
void attach_vision(ModelSetup& setup, const config::Recipe& recipe, const model::ModelOptions& options);

}  // namespace l4::train
