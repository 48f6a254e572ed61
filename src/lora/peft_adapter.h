// PEFT adapter files and merged HF model directories:
//   <dir>/adapter_config.json        peft_type LORA, r, lora_alpha, use_rslora, target_modules (linear
//                                    layers) and target_parameters (3-D expert tensors)
//   <dir>/adapter_model.safetensors  "base_model.model.<module>.lora_A.weight" [r, in] / lora_B [out, r];
//                                    experts as PEFT's ParamWrapper stores them: lora_A [E*r, out],
//                                    lora_B [in, r*E] (column j = rank j / E, expert j % E), and with both
//                                    expert tensors targeted gate_up_proj nests as
//                                    "experts.base_layer.lora_*" inside down_proj's "experts.lora_*".
#pragma once

#include <string>

#include "lora/lora_modules.h"
#include "config/model_arch.h"
#include "model/llama4_model.h"

namespace l4::lora {

// Writes the model's LoRA tensors (all experts: call on a model holding every expert) as a PEFT adapter.
// `base_model` goes into base_model_name_or_path.
void write_peft_adapter(model::Llama4ForCausalLMImpl& model, const LoraOptions& options,
                        const LoraInjection& injection, const std::string& dir,
                        const std::string& base_model);

// Reads adapter_config.json, applies LoRA as it describes and loads its tensors. Throws l4::Error naming the
// file for unsupported settings (DoRA, biases, rank/alpha patterns, regex target_modules), missing,
// unexpected or misshapen tensors.
LoraOptions load_peft_adapter(model::Llama4ForCausalLMImpl& model, const std::string& dir);

// Writes `base_dir`'s model with LoRA folded in as an HF model directory: config.json, model.safetensors
// (same layout as the base: text-only or multimodal, vision tensors copied unchanged) and the tokenizer
// files found in base_dir (or tokenizer_dir when given).
// A full HF model directory for a run without an HF base (pretraining from configs/*.yaml): the text model's
// tensors in the Llama4ForCausalLM layout, config.json written from the architecture, tokenizer files.
void write_text_model(model::Llama4ForCausalLMImpl& model, const config::ModelArch& arch,
                      const std::string& output_dir, const std::string& tokenizer_dir);

void write_merged_model(model::Llama4ForCausalLMImpl& model, const std::string& base_dir,
                        const std::string& output_dir, const std::string& tokenizer_dir = "");

}  // namespace l4::lora
