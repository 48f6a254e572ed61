// One restore path for every command that needs a model of a run or of a Hugging Face directory: train
// (its start and resume), eval, generate, export, merge-lora and forward. A recipe becomes model::build
// options in one place (model_options); a checkpoint's trained tensors are read by placement in one place
// (load_trained), so no command can rebuild a run differently from how it trained, or drop a module it
// trained.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "checkpoint/state.h"
#include "checkpoint/training_checkpoint.h"
#include "config/recipe.h"
#include "lora/lora_modules.h"
#include "model/llama4.h"
#include "parallel/process_grid.h"

namespace l4::restore {

struct RestoredModel {
  config::ModelArch arch;
  model::Llama4 model{nullptr};
  std::optional<lora::LoraOptions> lora;  // set when the model carries LoRA
  std::string base_dir;                   // HF directory of the base weights; empty: seeded init
  std::string tokenizer;                  // tokenizer file or directory ("" when unknown)
  std::string checkpoint;                 // step directory the trained tensors came from; empty: none
  int64_t step = 0;
};

// The recipe's model options for this rank of `grid`, on `device`: storage dtype, expert shard, initial
// weights (model.hf_dir / model.init, else the seeded init), LoRA, frozen tower, router losses, and the
// expert exchange over the grid's EP group (ep > 1 or a capacity factor).
model::ModelOptions model_options(const config::Recipe& recipe, const parallel::ProcessGrid& grid,
                                  const at::Device& device = at::kCPU);

// The HF directory a recipe's base weights come from (model.hf_dir, else model.init); "" for a seeded init.
std::string weights_dir(const config::Recipe& recipe);

// checkpoint.resume: "none" -> "", "auto" -> the latest valid checkpoint under checkpoint.dir ("" when there
// is none), otherwise the step directory it names.
std::string resume_path(const config::CheckpointSection& checkpoint);

// Opens the checkpoint at `path` (a step directory, or a run's checkpoint directory: its newest valid one);
// l4::Error naming the first differing line if `arch` is given and the checkpoint was saved for another
// architecture.
checkpoint::Checkpoint open_checkpoint(const std::string& path, const config::ModelArch* arch = nullptr,
                                       checkpoint::Verify verify = checkpoint::Verify::kEveryPiece);

// The model's trainable tensors as a checkpoint component, under canonical names with their placements:
// loading copies this rank's rows of sharded ones (l4::Error naming a missing tensor or one whose shape
// differs).
class ModelState final : public checkpoint::Stateful {
 public:
  explicit ModelState(model::Llama4Impl& model) : model_(model) {}
  void save_state(checkpoint::StateWriter& out) const override;
  void load_state(const checkpoint::StateReader& in) override;

 private:
  model::Llama4Impl& model_;
};

// checkpoint.resume_mode: weights_only: copies the trainable tensors the checkpoint holds with the same shape
// (this rank's rows of sharded ones); returns the names of those left as initialised (absent or reshaped).
std::vector<std::string> load_matching_weights(const checkpoint::StateReader& in, model::Llama4Impl& model);

// ModelState(model).load_state on one process.
void load_trained(const checkpoint::Checkpoint& ckpt, model::Llama4Impl& model);

// The recipe's model on one process with every expert, on `device`, and the trained tensors of the
// checkpoint at `checkpoint_path` (none when empty).
RestoredModel from_recipe(const config::Recipe& recipe, const std::string& checkpoint_path,
                          const at::Device& device = at::kCPU);

// The run of a checkpoint (its config snapshot is the recipe), with its trained tensors, on one process.
RestoredModel from_checkpoint(const std::string& path);

// An HF model directory, with a PEFT adapter applied when `adapter_dir` is given. `vision` false leaves a
// multimodal directory's tower and projector out (text-only use). The model is built on `device` with
// parameters stored in `dtype`.
RestoredModel from_hf_dir(const std::string& dir, const std::string& adapter_dir = "",
                          const at::Device& device = at::kCPU, bool vision = true,
                          at::ScalarType dtype = at::kFloat);

}  // namespace l4::restore
