#include "restore/streamed_export.h"

#include <torch/torch.h>

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "checkpoint/hf_model_dir.h"
#include "checkpoint/name_mapping.h"
#include "checkpoint/weight_source.h"
#include "config/model_arch.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/staged_output_dir.h"
#include "core/strings.h"
#include "lora/peft_adapter.h"
#include "model/build.h"
#include "model/placed.h"
#include "restore/export.h"
#include "restore/restore.h"
#include "restore/sharded_writer.h"
#include "restore/streaming_merge.h"

namespace l4::restore {
namespace {

namespace fs = std::filesystem;

bool is_lora_tensor(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos ||
         name.find(".lora.") != std::string::npos;
}

// Tensors a PEFT adapter carries besides the LoRA factors (modules_to_save).
bool is_saved_module_tensor(const std::string& name) {
  return starts_with(name, "vision_model.") || starts_with(name, "multi_modal_projector.");
}

// The run's model with only what it trains in memory: built by model::build without reading or initialising
// any weight (the frozen base's pages are allocated but never touched), then the checkpoint's trained
// tensors loaded. LoRA keeps the base in the model's own dtype here: a conversion would touch every page.
RestoredModel trainable_skeleton(config::Recipe recipe, const checkpoint::Checkpoint& ckpt) {
  recipe.lora.base_dtype = recipe.model.dtype;
  parallel::SelfCommunicator self;
  const parallel::ProcessGrid grid(self, 1, recipe.arch.text_config.num_local_experts);
  model::ModelOptions options = model_options(recipe, grid);
  options.expert_group = nullptr;
  options.fill_weights = false;
  RestoredModel out;
  out.arch = recipe.arch;
  out.model = model::build(recipe.arch, options);
  load_trained(ckpt, *out.model);
  if (recipe.lora.rank > 0) out.lora = lora::options_from_recipe(recipe.lora, recipe.source);
  out.base_dir = weights_dir(recipe);
  out.tokenizer = recipe.tokenizer.path;
  out.checkpoint = ckpt.path;
  out.step = ckpt.step;
  return out;
}

// A directory of its own next to `prefix` (prefix + ".XXXXXX", made by mkdtemp, so neither a user's directory
// nor a concurrent export's is taken over), removed when it goes out of scope: the adapter that only feeds
// the merge.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    std::error_code ec;
    fs::create_directories(fs::path(prefix).parent_path(), ec);
    std::string name = prefix + ".XXXXXX";
    L4_CHECK(::mkdtemp(name.data()) != nullptr, "cannot create a scratch directory {}: {}", name,
             std::strerror(errno));
    path_ = name;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Full fine-tuning: the base directory's tensors in its order, names and dtypes, each replaced by the
// checkpoint's tensor of the same (canonical) name when the run trained it.
void write_fine_tuned_model(const checkpoint::Checkpoint& ckpt, const std::string& base_dir,
                            const std::set<std::string>& trained, const std::string& tokenizer,
                            const ExportRequest& request) {
  const checkpoint::WeightSource base = checkpoint::WeightSource::open_dir(base_dir);
  const checkpoint::HfLayout layout = checkpoint::detect_layout(base.names(), base.dir());
  std::vector<PlannedTensor> plan;
  std::map<std::string, std::string> from_checkpoint;  // HF name -> canonical name in the checkpoint
  for (const std::string& name : base.names()) {
    const checkpoint::TensorEntry& e = base.entry(name);
    plan.push_back({name, e.dtype, e.shape});
    const std::string canonical = checkpoint::hf_to_canonical(name, layout);
    if (!trained.count(canonical)) continue;
    L4_CHECK(ckpt.global_shape(canonical) == e.shape, "{}: '{}' has shape {} in the checkpoint, {} in {}",
             ckpt.path, canonical, c10::str(at::IntArrayRef(ckpt.global_shape(canonical))),
             c10::str(at::IntArrayRef(e.shape)), base_dir);
    from_checkpoint[name] = canonical;
  }
  StagedOutputDir staged(request.output, request.overwrite, "--output");
  write_sharded_model(
      staged.staging(), plan,
      [&](const PlannedTensor& t, const TensorSink& sink) {
        const auto it = from_checkpoint.find(t.name);
        if (it == from_checkpoint.end()) {
          sink(base.load(t.name));  // frozen: the stored bytes
        } else {
          sink(ckpt.read(it->second).to(checkpoint::scalar_type_of(t.dtype)));
        }
      },
      request.max_shard_bytes);
  write_file_atomic((fs::path(staged.staging()) / "config.json").string(),
                    read_file((fs::path(base_dir) / "config.json").string()));
  checkpoint::copy_tokenizer_files(tokenizer.empty() ? base_dir : tokenizer, staged.staging());
  staged.commit();
  L4_LOG_INFO("wrote model ({} tensors, {} from {}) to {}", plan.size(), from_checkpoint.size(), ckpt.path,
              request.output);
}

}  // namespace

bool export_streamed(const ExportRequest& request) {
  const checkpoint::Checkpoint ckpt = open_checkpoint(request.checkpoint);
  L4_CHECK(ckpt.manifest.contains("config") && ckpt.manifest.at("config").is_string(),
           "{}: manifest.json has no config snapshot", ckpt.path);
  const config::Recipe recipe = config::parse_recipe(ckpt.manifest.at("config").get<std::string>(),
                                                     ckpt.path + "/manifest.json (config)",
                                                     {"parallel.expert_parallel=1"});
  const std::string base_dir = weights_dir(recipe);
  if (base_dir.empty() || !file_exists((fs::path(base_dir) / "config.json").string())) return false;
  const bool base_multimodal = config::load_model_arch(base_dir).vision_config.has_value();
  if (base_multimodal != recipe.arch.vision_config.has_value()) return false;  // output layout differs

  std::set<std::string> trained;
  for (const std::string& name : ckpt.names()) trained.insert(name);
  if (recipe.lora.rank == 0) {
    if (request.peft) return false;  // the restore path names the error
    // The checkpoint's model tensors: names of the model's trainable parameters (optimizer state and
    // the rest live under other names).
    std::set<std::string> model_tensors;
    {
      const checkpoint::WeightSource base = checkpoint::WeightSource::open_dir(base_dir);
      const checkpoint::HfLayout layout = checkpoint::detect_layout(base.names(), base.dir());
      for (const std::string& name : base.names()) {
        const std::string canonical = checkpoint::hf_to_canonical(name, layout);
        if (trained.count(canonical)) model_tensors.insert(canonical);
      }
    }
    check_output_outside(request.output, base_dir, "the base model directory");
    check_output_outside(request.output, ckpt.path, "the checkpoint directory");
    write_fine_tuned_model(ckpt, base_dir, model_tensors, recipe.tokenizer.path, request);
    return true;
  }

  RestoredModel restored = trainable_skeleton(recipe, ckpt);
  for (const model::PlacedParam& p : model::trainable_parameters(*restored.model)) {
    if (!is_lora_tensor(p.name) && !is_saved_module_tensor(p.name)) {
      L4_LOG_INFO("export: the run trains '{}', which a PEFT adapter cannot carry: building the model whole",
                  p.name);
      return false;
    }
  }
  if (request.peft) {
    write_adapter(restored, request.output, request.overwrite);
    return true;
  }
  check_output_outside(request.output, base_dir, "the base model directory");
  check_output_outside(request.output, ckpt.path, "the checkpoint directory");
  check_output_replaceable(request.output, request.overwrite, "--output");
  fs::path output = fs::path(request.output).lexically_normal();
  if (!output.has_filename()) output = output.parent_path();  // "out/": the scratch goes beside, not in it
  const ScratchDir adapter(output.string() + ".adapter");
  lora::write_peft_adapter(*restored.model, *restored.lora, adapter.path(), base_dir);
  restored = RestoredModel{};  // the LoRA factors are in the adapter now
  merge_peft_streamed(base_dir, adapter.path(), request.output, request.max_shard_bytes, request.overwrite,
                      recipe.tokenizer.path);
  return true;
}

}  // namespace l4::restore
