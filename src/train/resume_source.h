// The checkpoint a recipe resumes from, and its trained tensors loaded into the model that recipe builds:
// shared by the trainer's resume and by `llama4 generate --config`, so both see the same checkpoint the
// same way.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "checkpoint/training_checkpoint.h"
#include "config/recipe.h"
#include "train/model_setup.h"

namespace l4::train {

// checkpoint.resume: "none" -> "", "auto" -> the latest valid checkpoint under checkpoint.dir ("" when
// there is none), otherwise the step directory it names.
std::string resume_path(const config::CheckpointSection& checkpoint);

// Opens the checkpoint at `path`; l4::Error naming the first differing line if it was saved for another
// architecture.
checkpoint::Checkpoint open_checkpoint_for(const std::string& path, const config::ModelArch& arch);

// Rows [begin, end) of the checkpoint's tensor that `param` holds on this rank: its expert rows for expert
// tensors, everything (end = -1) otherwise.
std::pair<int64_t, int64_t> checkpoint_rows(const ModelSetup& setup, const NamedParam& param);

// Copies every trainable tensor of `setup` from the checkpoint (l4::Error naming a tensor whose shape
// differs).
void load_trainable(const checkpoint::Checkpoint& ckpt, const ModelSetup& setup);

}  // namespace l4::train
