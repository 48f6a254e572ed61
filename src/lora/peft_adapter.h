// A model's LoRA as a PEFT adapter and back (file format: checkpoint/peft_format.h). Keys follow the HF
// layout of the model: "base_model.model.model.layers..." for a text-only (Llama4ForCausalLM) model,
// "base_model.model.language_model.model.layers..." for a multimodal one, whose target names are written in
// full so that they match the language model only (the vision tower has q_proj too). Experts are stored as
// PEFT's ParamWrapper stores target_parameters: lora_A [E*r, out], lora_B [in, r*E] (column j = rank j / E,
// expert j % E); with both expert tensors targeted, gate_up_proj nests as "experts.base_layer.lora_*" inside
// down_proj's "experts.lora_*". Trained modules that are not LoRA (the projector, the tower when it trains)
// go in as modules_to_save.
#pragma once

#include <string>

#include "lora/lora_modules.h"
#include "model/llama4.h"

namespace l4::lora {

// Writes the model's LoRA tensors and trained non-LoRA modules (call on a model holding every expert).
// `base_model` goes into base_model_name_or_path.
void write_peft_adapter(model::Llama4Impl& model, const LoraOptions& options, const std::string& dir,
                        const std::string& base_model);

// Reads an adapter, applies LoRA as it describes and loads its tensors (and modules_to_save). Throws
// l4::Error naming the file for unsupported settings, and for missing, unexpected or misshapen tensors.
LoraOptions load_peft_adapter(model::Llama4Impl& model, const std::string& dir);

}  // namespace l4::lora
