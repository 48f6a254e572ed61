#include "checkpoint/name_mapping.h"

#include "core/error.h"
#include "core/strings.h"

namespace l4::checkpoint {
namespace {

constexpr std::string_view kLanguageModel = "language_model.";
constexpr std::string_view kMultimodalText = "language_model.model.";
constexpr std::string_view kMultimodalHead = "language_model.lm_head.";
constexpr std::string_view kText = "model.";
constexpr std::string_view kHead = "lm_head.";

bool is_multimodal_only(const std::string& name) {
  return starts_with(name, "vision_model.") || starts_with(name, "multi_modal_projector.");
}

}  // namespace

const char* layout_name(HfLayout layout) {
  return layout == HfLayout::kCausalLM ? "Llama4ForCausalLM" : "Llama4ForConditionalGeneration";
}

HfLayout detect_layout(const std::vector<std::string>& hf_names, const std::string& where) {
  const std::string* multimodal = nullptr;  // first name proving each layout, for the error message
  const std::string* text = nullptr;
  bool has_vision = false;
  for (const std::string& name : hf_names) {
    if (!multimodal && starts_with(name, kLanguageModel)) multimodal = &name;
    if (!text && (starts_with(name, kText) || starts_with(name, kHead))) text = &name;
    has_vision = has_vision || is_multimodal_only(name);
  }
  L4_CHECK(!(multimodal && text),
           "{}: tensor names mix the {} layout ('{}') and the {} layout ('{}'); expected one of them", where,
           layout_name(HfLayout::kConditionalGeneration), *multimodal, layout_name(HfLayout::kCausalLM), *text);
  if (multimodal || has_vision) return HfLayout::kConditionalGeneration;
  L4_CHECK(text != nullptr,
           "{}: no Llama 4 tensor names (expected model.* and lm_head.* as in {}, or language_model.model.* as "
           "in {})",
           where, layout_name(HfLayout::kCausalLM), layout_name(HfLayout::kConditionalGeneration));
  return HfLayout::kCausalLM;
}

std::string hf_to_canonical(const std::string& hf_name, HfLayout layout) {
  if (layout == HfLayout::kConditionalGeneration) {
    if (starts_with(hf_name, kMultimodalText) || starts_with(hf_name, kMultimodalHead))
      return hf_name.substr(kLanguageModel.size());
  }
  return hf_name;
}

std::string canonical_to_hf(const std::string& canonical_name, HfLayout layout) {
  if (layout == HfLayout::kConditionalGeneration) {
    if (starts_with(canonical_name, kText) || starts_with(canonical_name, kHead))
      return std::string(kLanguageModel) + canonical_name;
  }
  return canonical_name;
}

}  // namespace l4::checkpoint
