// The one way every command makes its model (train, eval, generate, export, merge-lora, forward): the root
// module for an architecture with ModelOptions' storage, then, in this order, its initial weights (an HF
// directory, or the layout-independent seeded init), the adapters (LoRA), the frozen vision tower, the
// router losses and the expert exchange.
#pragma once

#include <string>
#include <vector>

#include "config/model_arch.h"
#include "model/llama4.h"
#include "model/placed.h"

namespace l4::model {

Llama4 build(const config::ModelArch& arch, const ModelOptions& options);

// The model of an HF directory (architecture from its config.json) with its weights.
Llama4 load_pretrained(const std::string& dir, ModelOptions options = {});

// Every parameter that requires grad, with its placement (in named_parameters() order).
std::vector<PlacedParam> trainable_parameters(const Llama4Impl& model);

}  // namespace l4::model
