#include "train/resume_source.h"

#include <algorithm>

#include "core/error.h"
#include "core/strings.h"

namespace l4::train {
namespace {

// The first line where two architecture dumps differ, for "incompatible checkpoint" errors.
std::string first_difference(const std::string& saved, const std::string& current) {
  const auto a = split(saved, '\n'), b = split(current, '\n');
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string x = i < a.size() ? a[i] : "(nothing)", y = i < b.size() ? b[i] : "(nothing)";
    if (x != y) return fmt::format("checkpoint has '{}', recipe has '{}'", x, y);
  }
  return "";
}

}  // namespace

std::string resume_path(const config::CheckpointSection& checkpoint) {
  if (checkpoint.resume == "none") return "";
  if (checkpoint.resume != "auto") return checkpoint.resume;
  if (checkpoint.dir.empty()) return "";
  const auto latest = checkpoint::find_latest_valid(checkpoint.dir);
  return latest ? latest->path : "";
}

checkpoint::Checkpoint open_checkpoint_for(const std::string& path, const config::ModelArch& arch) {
  checkpoint::Checkpoint ckpt = checkpoint::open_checkpoint(path);
  const std::string saved_arch = ckpt.manifest.at("layout").value("arch", "");
  const std::string difference = first_difference(saved_arch, config::model_arch_to_yaml(arch));
  L4_CHECK(difference.empty(), "{}: checkpoint is for another architecture: {}", path, difference);
  return ckpt;
}

std::pair<int64_t, int64_t> checkpoint_rows(const ModelSetup& setup, const NamedParam& param) {
  if (!ModelSetup::is_expert_param(param.name) || param.param.dim() == 0) return {0, -1};
  return {setup.expert_begin, setup.expert_begin + param.param.size(0)};
}

void load_trainable(const checkpoint::Checkpoint& ckpt, const ModelSetup& setup) {
  torch::NoGradGuard no_grad;
  for (const NamedParam& p : setup.trainable) {
    const auto [begin, end] = checkpoint_rows(setup, p);
    const at::Tensor value = ckpt.read(p.name, begin, end);
    L4_CHECK(value.sizes() == p.param.sizes(), "{}: '{}' has shape {} in the checkpoint, {} in the model",
             ckpt.path, p.name, c10::str(value.sizes()), c10::str(p.param.sizes()));
    p.param.copy_(value);
  }
}

}  // namespace l4::train
