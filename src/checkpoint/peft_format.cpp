#include "checkpoint/peft_format.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace l4::checkpoint {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> string_list(const nlohmann::json& config, const char* key, const std::string& path) {
  std::vector<std::string> out;
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return out;
  L4_CHECK(it->is_array(), "{}: {} must be a list of names (regular expressions are not supported)", path,
           key);
  for (const auto& item : *it) {
    L4_CHECK(item.is_string(), "{}: {} entries must be strings", path, key);
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

void write_peft_adapter(const std::string& dir, const PeftAdapterConfig& config,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  fs::create_directories(dir);
  nlohmann::json json = {
      {"peft_type", "LORA"},
      {"task_type", nullptr},
      {"base_model_name_or_path", config.base_model},
      {"r", config.rank},
      {"lora_alpha", config.alpha},
      {"lora_dropout", config.dropout},
      {"use_rslora", config.rslora},
      {"target_modules", config.target_modules},
      {"target_parameters", config.target_parameters},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"init_lora_weights", true},
      {"inference_mode", true},
      {"modules_to_save",
       config.modules_to_save.empty() ? nlohmann::json(nullptr) : nlohmann::json(config.modules_to_save)},
      {"use_dora", false},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()},
  };
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), json.dump(2) + "\n");
  save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
}

PeftAdapterFiles read_peft_adapter(const std::string& dir) {
  PeftAdapterFiles files;
  files.dir = dir;
  files.config_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string& path = files.config_path;
  L4_CHECK(file_exists(path), "{}: no adapter_config.json (expected a PEFT LoRA adapter directory)", dir);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    L4_FAIL("{}: not valid JSON: {}", path, e.what());
  }
  L4_CHECK(config.is_object(), "{}: expected a JSON object", path);
  auto get = [&](const char* key) -> const nlohmann::json& {
    static const nlohmann::json null_value;
    auto it = config.find(key);
    return it == config.end() ? null_value : *it;
  };
  L4_CHECK(get("peft_type") == "LORA", "{}: peft_type must be \"LORA\"", path);
  L4_CHECK(get("r").is_number_integer() && get("r").get<int64_t>() >= 1, "{}: r must be an integer >= 1",
           path);
  L4_CHECK(get("lora_alpha").is_number(), "{}: lora_alpha must be a number", path);
  L4_CHECK(get("bias").is_null() || get("bias") == "none", "{}: bias must be \"none\"", path);
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    L4_CHECK(get(key).is_null() || get(key).empty(), "{}: {} is not supported", path, key);
  }
  // Fields that change which weights are adapted or how: applying the adapter while ignoring them would give
  // another model than PEFT's, so they are refused rather than skipped. (Fields that only shape the
  // initialisation, like init_lora_weights or loftq_config, do not matter once the weights exist.)
  for (const char* key : {"layers_to_transform", "layers_pattern", "exclude_modules", "layer_replication",
                          "trainable_token_indices", "megatron_config", "alora_invocation_tokens"}) {
    const nlohmann::json& value = get(key);
    L4_CHECK(value.is_null() || (value.is_array() && value.empty()) || (value.is_object() && value.empty()) ||
                 (value.is_string() && value.get<std::string>().empty()),
             "{}: {}={} is not supported (it changes which weights the adapter applies to)", path, key,
             value.dump());
  }
  for (const char* key : {"lora_bias", "use_qalora", "use_dora", "fan_in_fan_out"}) {
    L4_CHECK(get(key).is_null() || get(key) == false, "{}: {}=true is not supported", path, key);
  }
  PeftAdapterConfig& out = files.config;
  out.rank = get("r").get<int64_t>();
  out.alpha = get("lora_alpha").get<double>();
  out.rslora = get("use_rslora").is_boolean() && get("use_rslora").get<bool>();
  out.dropout = get("lora_dropout").is_number() ? get("lora_dropout").get<double>() : 0.0;
  out.target_modules = string_list(config, "target_modules", path);
  out.target_parameters = string_list(config, "target_parameters", path);
  out.modules_to_save = string_list(config, "modules_to_save", path);
  out.base_model =
      get("base_model_name_or_path").is_string() ? get("base_model_name_or_path").get<std::string>() : "";
  L4_CHECK(!out.target_modules.empty() || !out.target_parameters.empty(),
           "{}: no target_modules or target_parameters", path);
  files.weights = SafetensorsFile::open((fs::path(dir) / "adapter_model.safetensors").string());
  return files;
}

}  // namespace l4::checkpoint
