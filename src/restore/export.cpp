#include "restore/export.h"

#include <filesystem>

#include "checkpoint/hf_model_dir.h"
#include "checkpoint/name_mapping.h"
#include "config/hf_config_json.h"
#include "core/error.h"
#include "core/file_io.h"
#include "lora/lora_modules.h"
#include "lora/peft_adapter.h"

namespace l4::restore {
namespace {

namespace fs = std::filesystem;

// The base directory's config.json when it describes the layout we write, else one from the architecture.
std::string config_json(const RestoredModel& restored, checkpoint::HfLayout layout) {
  const std::string base_config = (fs::path(restored.base_dir) / "config.json").string();
  if (!restored.base_dir.empty() && file_exists(base_config)) {
    const bool base_multimodal = config::load_model_arch(restored.base_dir).vision_config.has_value();
    if (base_multimodal == (layout == checkpoint::HfLayout::kConditionalGeneration))
      return read_file(base_config);
  }
  return config::model_arch_to_hf_json(restored.arch,
                                       /*text_only=*/layout == checkpoint::HfLayout::kCausalLM);
}

}  // namespace

void write_merged_model(RestoredModel& restored, const std::string& output_dir) {
  model::Llama4Impl& model = *restored.model;
  const checkpoint::HfLayout layout =
      model.has_vision() ? checkpoint::HfLayout::kConditionalGeneration : checkpoint::HfLayout::kCausalLM;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, t] : lora::merged_state(model))
    tensors.emplace_back(checkpoint::canonical_to_hf(name, layout), t);
  checkpoint::write_hf_model_dir(output_dir, config_json(restored, layout), tensors,
                                 !restored.tokenizer.empty() ? restored.tokenizer : restored.base_dir);
}

void write_adapter(RestoredModel& restored, const std::string& output_dir) {
  L4_CHECK(restored.lora.has_value(), "{}: a PEFT adapter needs a LoRA run (lora.rank is 0)",
           restored.checkpoint.empty() ? restored.base_dir : restored.checkpoint);
  lora::write_peft_adapter(*restored.model, *restored.lora, output_dir, restored.base_dir);
}

}  // namespace l4::restore
