// The architecture as a Hugging Face config.json (the inverse of load_model_arch): what an exported model
// directory carries so that transformers and llama4 both load it.
#pragma once

#include <string>

#include "config/model_arch.h"

namespace l4::config {

// text_only: the Llama4ForCausalLM layout (text fields at the top level); otherwise the
// Llama4ForConditionalGeneration layout with text_config / vision_config.
std::string model_arch_to_hf_json(const ModelArch& arch, bool text_only);

}  // namespace l4::config
