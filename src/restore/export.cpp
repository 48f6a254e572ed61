#include "restore/export.h"

#include <filesystem>
#include <map>
#include <optional>

#include "checkpoint/hf_model_dir.h"
#include "checkpoint/name_mapping.h"
#include "checkpoint/weight_source.h"
#include "config/hf_config_json.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/staged_output_dir.h"
#include "lora/lora_modules.h"
#include "lora/peft_adapter.h"
#include "restore/sharded_writer.h"

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

// The base's weights when the run started from an HF directory (seeded runs have none).
std::optional<checkpoint::WeightSource> base_weights(const std::string& base_dir) {
  if (base_dir.empty() || !fs::exists(base_dir)) return std::nullopt;
  return checkpoint::WeightSource::open_dir(base_dir);
}

}  // namespace

void write_merged_model(RestoredModel& restored, const std::string& output, int64_t max_shard_bytes,
                        bool overwrite) {
  check_output_outside(output, restored.base_dir, "the base model directory");
  check_output_outside(output, restored.checkpoint, "the checkpoint directory");
  StagedOutputDir staged(output, overwrite, "--output");
  const std::string& output_dir = staged.staging();
  model::Llama4Impl& model = *restored.model;
  const checkpoint::HfLayout layout =
      model.has_vision() ? checkpoint::HfLayout::kConditionalGeneration : checkpoint::HfLayout::kCausalLM;
  const std::optional<checkpoint::WeightSource> base = base_weights(restored.base_dir);
  const checkpoint::HfLayout base_layout =
      base ? checkpoint::detect_layout(base->names(), base->dir()) : layout;
  std::vector<PlannedTensor> plan;
  std::map<std::string, at::Tensor> merged;
  for (auto& [name, t] : lora::merged_state(model)) {
    // The base's dtype for every tensor it has (the run may hold frozen weights in float32 to merge
    // exactly); the model's own for tensors the base lacks.
    const std::string base_name = checkpoint::canonical_to_hf(name, base_layout);
    const std::string dtype = base && base->contains(base_name) ? base->entry(base_name).dtype
                                                                : checkpoint::dtype_of(t.scalar_type());
    const std::string hf_name = checkpoint::canonical_to_hf(name, layout);
    plan.push_back({hf_name, dtype, t.sizes().vec()});
    merged[hf_name] = t;
  }
  write_sharded_model(
      output_dir, plan,
      [&](const PlannedTensor& p, const TensorSink& sink) {
        sink(merged.at(p.name).to(checkpoint::scalar_type_of(p.dtype)));
      },
      max_shard_bytes);
  write_file_atomic((fs::path(output_dir) / "config.json").string(), config_json(restored, layout));
  const std::string tokenizer = !restored.tokenizer.empty() ? restored.tokenizer : restored.base_dir;
  if (!tokenizer.empty()) checkpoint::copy_tokenizer_files(tokenizer, output_dir);
  staged.commit();
  L4_LOG_INFO("wrote model ({} tensors) to {}", plan.size(), output);
}

void write_adapter(RestoredModel& restored, const std::string& output, bool overwrite) {
  L4_CHECK(restored.lora.has_value(), "{}: a PEFT adapter needs a LoRA run (lora.rank is 0)",
           restored.checkpoint.empty() ? restored.base_dir : restored.checkpoint);
  check_output_outside(output, restored.base_dir, "the base model directory");
  check_output_outside(output, restored.checkpoint, "the checkpoint directory");
  StagedOutputDir staged(output, overwrite, "--output");
  lora::write_peft_adapter(*restored.model, *restored.lora, staged.staging(), restored.base_dir);
  staged.commit();
}

}  // namespace l4::restore
