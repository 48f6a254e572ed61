// What a training run trains, recorded in every checkpoint's manifest ("identity") and compared when the run
// resumes: resuming onto another base model, other adapters or other data would otherwise apply the saved
// tensors to something they were not trained for, and the next save would silently overwrite the run.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/recipe.h"

namespace l4::train {

// {"base_model": ..., "lora": ..., "train_data": ...}: each value a string that is equal exactly when the
// runs agree. The base model is a sha256 over its config.json and every safetensors header (tensor names,
// dtypes, shapes; not the weights), or the seed of a seeded init; the data is the sha256 of the train
// dataset's meta.json (its sources, tokenizer and counts).
nlohmann::json run_identity(const config::Recipe& recipe);

// Fields whose values differ ("lora: checkpoint 'rank=8 ...', recipe 'rank=4 ...'"); a field the checkpoint
// does not record (saved by an older llama4) is not compared.
std::vector<std::string> identity_differences(const nlohmann::json& saved, const nlohmann::json& current);

// Where a training run resumes from, and how.
struct ResumeChoice {
  std::string path;                      // step directory; empty: start from scratch
  bool weights_only = false;             // model tensors only: a new run starting from another run's weights
  std::vector<std::string> differences;  // identity_differences(saved, current)
};

// checkpoint.resume picks the checkpoint (restore::resume_path); its identity must equal `identity`, else
// l4::Error naming each differing field with both values, unless checkpoint.resume_mode is weights_only. A
// weights_only run resumes fully from its own checkpoints (same identity, in checkpoint.dir) once it has
// some, and refuses a source checkpoint inside its own checkpoint.dir (its saves would mix with another
// run's).
ResumeChoice choose_resume(const config::Recipe& recipe, const nlohmann::json& identity);

}  // namespace l4::train
