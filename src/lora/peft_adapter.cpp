#include "lora/peft_adapter.h"

#include "config/hf_config_json.h"
#include "core/file_io.h"

#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "checkpoint/model_weights.h"
#include "checkpoint/safetensors.h"
#include "config/hf_config_json.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"

namespace l4::lora {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPrefix = "base_model.model.";

// "model.layers.3.self_attn.q_proj" -> "self_attn.q_proj".
std::string last_two(const std::string& name) {
  const auto last = name.rfind('.');
  const auto before = last == std::string::npos ? std::string::npos : name.rfind('.', last - 1);
  return before == std::string::npos ? name : name.substr(before + 1);
}

// Every layer name with its kind's suffix ("self_attn.q_proj") when all of those are chosen, else full names.
std::vector<std::string> compress(const std::vector<std::string>& chosen,
                                  const std::vector<std::string>& all) {
  std::map<std::string, int> chosen_count, all_count;
  for (const auto& n : chosen) ++chosen_count[last_two(n)];
  for (const auto& n : all) ++all_count[last_two(n)];
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& n : chosen) {
    const std::string s = last_two(n);
    const std::string entry = chosen_count[s] == all_count[s] ? s : n;
    if (seen.insert(entry).second) out.push_back(entry);
  }
  return out;
}

// Names of every layer of the kinds apply_lora can wrap (for compress()).
void candidate_names(model::Llama4ForCausalLMImpl& model, std::vector<std::string>& linears,
                     std::vector<std::string>& experts) {
  const auto& layers = model.model->decoder_layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) linears.push_back(p + ".self_attn." + n);
    const std::string mlp = layers[i]->moe ? p + ".feed_forward.shared_expert" : p + ".feed_forward";
    for (const char* n : {"gate_proj", "up_proj", "down_proj"}) linears.push_back(mlp + "." + n);
    if (layers[i]->moe) {
      experts.push_back(p + ".feed_forward.experts.gate_up_proj");
      experts.push_back(p + ".feed_forward.experts.down_proj");
    }
  }
}

model::MoeImpl& moe_of(model::Llama4ForCausalLMImpl& model, const std::string& experts_name) {
  // "model.layers.<i>.feed_forward.experts"
  const size_t i = std::stoul(experts_name.substr(std::string("model.layers.").size()));
  return *model.model->decoder_layers.at(i)->moe;
}

// PEFT key of each targeted expert tensor: with several targeted on one module, the earlier ones in
// target_parameters order sit deeper ("base_layer." per wrapper above them).
std::map<std::string, std::string> expert_keys(const std::vector<std::string>& expert_params) {
  std::map<std::string, std::vector<std::string>> by_module;
  for (const auto& p : expert_params) {
    const std::string module = p.substr(0, p.rfind('.'));
    by_module[module].push_back(p);  // gate_up_proj before down_proj (apply_lora's order)
  }
  std::map<std::string, std::string> keys;
  for (const auto& [module, params] : by_module) {
    for (size_t i = 0; i < params.size(); ++i) {
      std::string key = kPrefix + module + ".";
      for (size_t j = i + 1; j < params.size(); ++j) key += "base_layer.";
      keys[params[i]] = key;
    }
  }
  return keys;
}

struct ExpertPair {
  at::Tensor* a;
  at::Tensor* b;
};

ExpertPair expert_tensors(model::Llama4ForCausalLMImpl& model, const std::string& param) {
  const std::string module = param.substr(0, param.rfind('.'));
  LoraExpertsImpl* lora = find_lora_experts(moe_of(model, module));
  L4_ASSERT(lora != nullptr, "no LoRA experts on {}", module);
  if (param.size() >= 12 && param.compare(param.size() - 12, 12, "gate_up_proj") == 0) {
    return {&lora->gate_up_proj_A, &lora->gate_up_proj_B};
  }
  return {&lora->down_proj_A, &lora->down_proj_B};
}

// Linear LoRA modules by HF name.
std::map<std::string, LoraLinearImpl*> lora_linears(model::Llama4ForCausalLMImpl& model) {
  std::map<std::string, LoraLinearImpl*> out;
  for (const auto& item : model.named_modules()) {
    if (auto* l = dynamic_cast<LoraLinearImpl*>(item.value().get())) out[item.key()] = l;
  }
  return out;
}

}  // namespace

void write_peft_adapter(model::Llama4ForCausalLMImpl& model, const LoraOptions& options,
                        const LoraInjection& injection, const std::string& dir,
                        const std::string& base_model) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, linear] : lora_linears(model)) {
    tensors.emplace_back(kPrefix + name + ".lora_A.weight", linear->lora_A->weight.detach());
    tensors.emplace_back(kPrefix + name + ".lora_B.weight", linear->lora_B->weight.detach());
  }
  for (const auto& [param, key] : expert_keys(injection.expert_params)) {
    const ExpertPair t = expert_tensors(model, param);
    const at::Tensor a = t.a->detach(), b = t.b->detach();  // A [E, r, out], B [E, in, r]
    const int64_t e = a.size(0), r = a.size(1);
    tensors.emplace_back(key + "lora_A.weight", a.reshape({e * r, a.size(2)}));
    tensors.emplace_back(key + "lora_B.weight", b.permute({1, 2, 0}).reshape({b.size(1), r * e}));
  }
  std::vector<std::string> all_linears, all_experts;
  candidate_names(model, all_linears, all_experts);
  nlohmann::json config = {
      {"peft_type", "LORA"},
      {"task_type", nullptr},
      {"base_model_name_or_path", base_model},
      {"r", options.rank},
      {"lora_alpha", options.alpha},
      {"lora_dropout", injection.expert_params.empty() ? options.dropout : 0.0},
      {"use_rslora", options.rslora},
      {"target_modules", compress(injection.linear_modules, all_linears)},
      {"target_parameters", compress(injection.expert_params, all_experts)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"init_lora_weights", true},
      {"inference_mode", true},
      {"modules_to_save", nullptr},
      {"use_dora", false},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()},
  };
  // target_parameters entries are "<module>.<param>": compress() cut them to "experts.gate_up_proj", which
  // PEFT also matches by suffix; keep the feed_forward component for readability.
  for (auto& t : config["target_parameters"]) {
    const std::string s = t.get<std::string>();
    if (s.rfind("experts.", 0) == 0) t = "feed_forward." + s;
  }
  if (injection.linear_modules.empty()) config["target_modules"] = nlohmann::json::array();
  if (!injection.expert_params.empty() && options.dropout > 0.0) {
    L4_LOG_WARN("PEFT applies no dropout to target_parameters; the adapter records lora_dropout 0");
  }
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
  checkpoint::save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                               {{"format", "pt"}});
  L4_LOG_INFO("wrote PEFT adapter ({} tensors) to {}", tensors.size(), dir);
}

LoraOptions load_peft_adapter(model::Llama4ForCausalLMImpl& model, const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string weights_path = (fs::path(dir) / "adapter_model.safetensors").string();
  L4_CHECK(file_exists(config_path), "{}: no adapter_config.json (expected a PEFT LoRA adapter directory)",
           dir);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    L4_FAIL("{}: not valid JSON: {}", config_path, e.what());
  }
  L4_CHECK(config.is_object(), "{}: expected a JSON object", config_path);
  auto get = [&](const char* key) -> const nlohmann::json& {
    static const nlohmann::json null_value;
    auto it = config.find(key);
    return it == config.end() ? null_value : *it;
  };
  L4_CHECK(get("peft_type") == "LORA", "{}: peft_type must be \"LORA\"", config_path);
  L4_CHECK(get("r").is_number_integer() && get("r").get<int64_t>() >= 1, "{}: r must be an integer >= 1",
           config_path);
  L4_CHECK(get("lora_alpha").is_number(), "{}: lora_alpha must be a number", config_path);
  for (const char* key : {"use_dora", "fan_in_fan_out"}) {
    L4_CHECK(get(key).is_null() || get(key) == false, "{}: {}=true is not supported", config_path, key);
  }
  L4_CHECK(get("bias").is_null() || get("bias") == "none", "{}: bias must be \"none\"", config_path);
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    L4_CHECK(get(key).is_null() || get(key).empty(), "{}: {} is not supported", config_path, key);
  }
  L4_CHECK(get("target_modules").is_null() || get("target_modules").is_array(),
           "{}: target_modules must be a list of names (regular expressions are not supported)", config_path);
  LoraOptions options;
  options.rank = get("r").get<int64_t>();
  options.alpha = get("lora_alpha").get<double>();
  options.rslora = get("use_rslora").is_boolean() && get("use_rslora").get<bool>();
  options.targets.clear();
  for (const char* key : {"target_modules", "target_parameters"}) {
    if (!get(key).is_array()) continue;
    for (const auto& t : get(key)) {
      L4_CHECK(t.is_string(), "{}: {} entries must be strings", config_path, key);
      options.targets.push_back(t.get<std::string>());
    }
  }
  L4_CHECK(!options.targets.empty(), "{}: no target_modules or target_parameters", config_path);
  const LoraInjection injection = apply_lora(model, options, 0);

  const auto file = checkpoint::SafetensorsFile::open(weights_path);
  std::set<std::string> unused;
  for (const auto& e : file->entries()) unused.insert(e.name);
  torch::NoGradGuard no_grad;
  auto load_into = [&](const std::string& key, at::Tensor& dest, const at::Tensor& value_shape_like) {
    L4_CHECK(file->contains(key), "{}: missing tensor '{}'", weights_path, key);
    const at::Tensor t = file->load(key);
    L4_CHECK(t.sizes() == value_shape_like.sizes(), "{}: tensor '{}' has shape {}, expected {}", weights_path,
             key, c10::str(t.sizes()), c10::str(value_shape_like.sizes()));
    dest.copy_(t);
    unused.erase(key);
  };
  for (const auto& [name, linear] : lora_linears(model)) {
    load_into(kPrefix + name + ".lora_A.weight", linear->lora_A->weight, linear->lora_A->weight);
    load_into(kPrefix + name + ".lora_B.weight", linear->lora_B->weight, linear->lora_B->weight);
  }
  for (const auto& [param, key] : expert_keys(injection.expert_params)) {
    const ExpertPair t = expert_tensors(model, param);
    const int64_t e = t.a->size(0), r = t.a->size(1), out = t.a->size(2), in = t.b->size(1);
    at::Tensor a = torch::empty({e * r, out}, t.a->options());
    at::Tensor b = torch::empty({in, r * e}, t.b->options());
    load_into(key + "lora_A.weight", a, a);
    load_into(key + "lora_B.weight", b, b);
    t.a->copy_(a.view({e, r, out}));
    t.b->copy_(b.view({in, r, e}).permute({2, 0, 1}));
  }
  L4_CHECK(unused.empty(), "{}: {} tensor(s) match no targeted layer of this model, e.g. '{}'", weights_path,
           unused.size(), unused.empty() ? "" : *unused.begin());
  L4_LOG_INFO("loaded PEFT adapter {} (rank {}, alpha {})", dir, options.rank, options.alpha);
  return options;
}

namespace {

void copy_tokenizer_files(const fs::path& from, const std::string& output_dir) {
  fs::path tok = from;
  if (fs::is_regular_file(tok)) tok = tok.parent_path();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "tokenizer.model", "chat_template.jinja", "chat_template.json",
                        "generation_config.json"}) {
    const fs::path src = tok / f;
    if (fs::exists(src)) fs::copy_file(src, fs::path(output_dir) / f, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

void write_text_model(model::Llama4ForCausalLMImpl& model, const config::ModelArch& arch,
                      const std::string& output_dir, const std::string& tokenizer_dir) {
  fs::create_directories(output_dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, t] : merged_state(model)) tensors.emplace_back(name, t);  // canonical = CausalLM names
  checkpoint::save_safetensors((fs::path(output_dir) / "model.safetensors").string(), tensors,
                               {{"format", "pt"}});
  write_file_atomic((fs::path(output_dir) / "config.json").string(),
                    config::model_arch_to_hf_json(arch, /*text_only=*/true));
  if (!tokenizer_dir.empty()) copy_tokenizer_files(tokenizer_dir, output_dir);
  L4_LOG_INFO("wrote model ({} tensors) to {}", tensors.size(), output_dir);
}

void write_merged_model(model::Llama4ForCausalLMImpl& model, const std::string& base_dir,
                        const std::string& output_dir, const std::string& tokenizer_dir) {
  const auto weights = checkpoint::ModelWeights::open_dir(base_dir);
  fs::create_directories(output_dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::set<std::string> written;
  for (auto& [name, t] : merged_state(model)) {
    const std::string hf = checkpoint::canonical_to_hf(name, weights.layout());
    written.insert(hf);
    tensors.emplace_back(hf, t);
  }
  // Whatever the base holds beyond the text model (vision tower, projector) is copied unchanged.
  for (const auto& hf : weights.source().names()) {
    if (!written.count(hf)) tensors.emplace_back(hf, weights.source().load(hf));
  }
  checkpoint::save_safetensors((fs::path(output_dir) / "model.safetensors").string(), tensors,
                               {{"format", "pt"}});
  const std::string config_json = (fs::path(base_dir) / "config.json").string();
  L4_CHECK(file_exists(config_json), "{}: no config.json to copy into the merged model", base_dir);
  fs::copy_file(config_json, fs::path(output_dir) / "config.json", fs::copy_options::overwrite_existing);
  copy_tokenizer_files(tokenizer_dir.empty() ? fs::path(base_dir) : fs::path(tokenizer_dir), output_dir);
  L4_LOG_INFO("wrote merged model ({} tensors) to {}", tensors.size(), output_dir);
}

}  // namespace l4::lora
