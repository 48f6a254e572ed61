#include "train/run_identity.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/strings.h"
#include "restore/restore.h"
#include "tokenizer/sha256.h"

namespace fs = std::filesystem;

namespace l4::train {
namespace {

// The JSON header of a safetensors file: names, dtypes, shapes and offsets of its tensors.
std::string safetensors_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  L4_CHECK(in.good(), "{}: cannot read", path);
  uint8_t size_bytes[8] = {};
  in.read(reinterpret_cast<char*>(size_bytes), 8);
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | size_bytes[i];
  L4_CHECK(in.good() && size > 0 && size <= (uint64_t{100} << 20),
           "{}: not a safetensors file (header size {})", path, size);
  std::string header(size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(size));
  L4_CHECK(in.good(), "{}: truncated safetensors header", path);
  return header;
}

std::string base_model_identity(const config::Recipe& recipe) {
  const std::string& dir = !recipe.model.hf_dir.empty() ? recipe.model.hf_dir : recipe.model.init;
  if (dir.empty()) return fmt::format("seeded init (train.seed={})", recipe.train.seed);
  std::string material;
  const std::string config_json = (fs::path(dir) / "config.json").string();
  if (file_exists(config_json)) material += read_file(config_json);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    material += "\n" + file + "\n" + safetensors_header((fs::path(dir) / file).string());
  }
  return "sha256:" + tokenizer::sha256_hex(material).substr(0, 16);
}

std::string data_identity(const config::Recipe& recipe) {
  const std::string meta = (fs::path(recipe.data.train) / "meta.json").string();
  if (!file_exists(meta)) return "none";
  return "sha256:" + tokenizer::sha256_hex(read_file(meta)).substr(0, 16);
}

}  // namespace

nlohmann::json run_identity(const config::Recipe& recipe) {
  const config::LoraSection& l = recipe.lora;
  const std::string lora = l.rank == 0 ? "none"
                                       : fmt::format("rank={} alpha={} rslora={} targets=[{}]", l.rank,
                                                     l.alpha, l.rslora, fmt::join(l.targets, ", "));
  return {{"base_model", base_model_identity(recipe)}, {"lora", lora}, {"train_data", data_identity(recipe)}};
}

std::vector<std::string> identity_differences(const nlohmann::json& saved, const nlohmann::json& current) {
  std::vector<std::string> out;
  if (!saved.is_object()) return out;
  for (const auto& [field, value] : current.items()) {
    if (!saved.contains(field) || saved.at(field) == value) continue;
    out.push_back(fmt::format("{}: checkpoint {}, recipe {}", field, saved.at(field).dump(), value.dump()));
  }
  return out;
}

namespace {

// Only the manifest: the trainer verifies the whole checkpoint when it loads it.
nlohmann::json saved_identity(const std::string& path) {
  const std::string manifest = (fs::path(path) / "manifest.json").string();
  if (!file_exists(manifest)) return nullptr;
  const nlohmann::json parsed =
      nlohmann::json::parse(read_file(manifest), nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? parsed.value("identity", nlohmann::json()) : nlohmann::json();
}

bool inside(const std::string& path, const std::string& dir) {
  if (dir.empty()) return false;
  const std::string p = fs::weakly_canonical(path).string(), d = fs::weakly_canonical(dir).string() + "/";
  return p.rfind(d, 0) == 0;
}

}  // namespace

ResumeChoice choose_resume(const config::Recipe& recipe, const nlohmann::json& identity) {
  const config::CheckpointSection& c = recipe.checkpoint;
  const bool weights_only = c.resume_mode == "weights_only";
  ResumeChoice choice;
  if (weights_only && c.resume != "none" && !c.dir.empty()) {
    // This run's own checkpoints, once it has written some, continue it exactly.
    const auto own = checkpoint::find_latest_valid(c.dir);
    if (own && identity_differences(own->manifest.value("identity", nlohmann::json()), identity).empty()) {
      choice.path = own->path;
      return choice;
    }
  }
  choice.path = restore::resume_path(c);
  if (choice.path.empty()) return choice;
  choice.differences = identity_differences(saved_identity(choice.path), identity);
  if (choice.differences.empty()) return choice;
  L4_CHECK(
      weights_only,
      "{}: the checkpoint was saved by another run (checkpoint.resume_mode: strict):\n  {}\nresume it with "
      "the recipe it was trained with, give this run its own checkpoint.dir (or checkpoint.resume: none), or "
      "set checkpoint.resume_mode: weights_only to start a new run from its weights",
      choice.path, join(choice.differences, "\n  "));
  L4_CHECK(!inside(choice.path, c.dir),
           "{}: checkpoint.resume_mode: weights_only starts a new run from this checkpoint, but it lies in "
           "this run's "
           "own checkpoint.dir '{}': give the new run its own checkpoint.dir",
           choice.path, c.dir);
  choice.weights_only = true;
  return choice;
}

}  // namespace l4::train
