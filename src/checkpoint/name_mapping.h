// Tensor names of the two Hugging Face Llama 4 checkpoint layouts and our canonical names.
//   Llama4ForCausalLM:              model.*, lm_head.*                       (text only)
//   Llama4ForConditionalGeneration: language_model.model.*, language_model.lm_head.*, vision_model.*,
//                                   multi_modal_projector.*
// Canonical names are the CausalLM text names (model.layers.N..., lm_head.weight) plus vision_model.* and
// multi_modal_projector.* unchanged. Names outside these patterns map to themselves (and then show up as
// unexpected when checked against a model).
#pragma once

#include <string>
#include <vector>

namespace l4::checkpoint {

enum class HfLayout { kCausalLM, kConditionalGeneration };

// "Llama4ForCausalLM" / "Llama4ForConditionalGeneration".
const char* layout_name(HfLayout layout);

// The layout of a checkpoint from its tensor names. Throws l4::Error (naming `where`) when the names mix
// both layouts or contain no Llama 4 name at all.
HfLayout detect_layout(const std::vector<std::string>& hf_names, const std::string& where);

std::string hf_to_canonical(const std::string& hf_name, HfLayout layout);
std::string canonical_to_hf(const std::string& canonical_name, HfLayout layout);

}  // namespace l4::checkpoint
