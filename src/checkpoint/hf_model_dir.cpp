#include "checkpoint/hf_model_dir.h"

#include <filesystem>

#include "checkpoint/safetensors.h"
#include "core/file_io.h"
#include "core/log.h"

namespace l4::checkpoint {
namespace {

namespace fs = std::filesystem;

}  // namespace

void copy_tokenizer_files(const std::string& from, const std::string& output_dir) {
  fs::path dir = from;
  if (fs::is_regular_file(dir)) dir = dir.parent_path();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "tokenizer.model", "chat_template.jinja", "chat_template.json",
                        "generation_config.json", "preprocessor_config.json", "processor_config.json"}) {
    const fs::path src = dir / f;
    if (!fs::exists(src)) continue;
    const fs::path dst = fs::path(output_dir) / f;
    std::error_code ec;
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) fail_write(dst.string(), ec.value());
  }
}

void write_hf_model_dir(const std::string& dir, const std::string& config_json,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const std::string& tokenizer_dir) {
  fs::create_directories(dir);
  save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomic((fs::path(dir) / "config.json").string(), config_json);
  if (!tokenizer_dir.empty()) copy_tokenizer_files(tokenizer_dir, dir);
  L4_LOG_INFO("wrote model ({} tensors) to {}", tensors.size(), dir);
}

}  // namespace l4::checkpoint
