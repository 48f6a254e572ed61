#include "lora/peft_adapter.h"

#include <map>
#include <set>

#include "checkpoint/name_mapping.h"
#include "checkpoint/peft_format.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"

namespace l4::lora {
namespace {

using checkpoint::HfLayout;
constexpr const char* kPrefix = checkpoint::kPeftPrefix;

HfLayout layout_of(const model::Llama4Impl& model) {
  return model.has_vision() ? HfLayout::kConditionalGeneration : HfLayout::kCausalLM;
}

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
void candidate_names(model::Llama4Impl& model, std::vector<std::string>& linears,
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

// Target names as the adapter config lists them: compressed to suffixes for a text-only model; full HF
// names for a multimodal one, where a suffix would also match the vision tower's layers.
std::vector<std::string> config_targets(const std::vector<std::string>& chosen,
                                        const std::vector<std::string>& all, HfLayout layout) {
  std::vector<std::string> out;
  if (layout == HfLayout::kConditionalGeneration) {
    for (const auto& n : chosen) out.push_back(checkpoint::canonical_to_hf(n, layout));
    return out;
  }
  return compress(chosen, all);
}

model::MoeImpl& moe_of(model::Llama4Impl& model, const std::string& experts_name) {
  // "model.layers.<i>.feed_forward.experts"
  const size_t i = std::stoul(experts_name.substr(std::string("model.layers.").size()));
  return *model.model->decoder_layers.at(i)->moe;
}

// PEFT key prefix of each targeted expert tensor: with several targeted on one module, the earlier ones in
// target_parameters order sit deeper ("base_layer." per wrapper above them).
std::map<std::string, std::string> expert_keys(const std::vector<std::string>& expert_params,
                                               HfLayout layout) {
  std::map<std::string, std::vector<std::string>> by_module;
  for (const auto& p : expert_params) by_module[p.substr(0, p.rfind('.'))].push_back(p);
  std::map<std::string, std::string> keys;
  for (const auto& [module, params] : by_module) {
    for (size_t i = 0; i < params.size(); ++i) {
      std::string key = kPrefix + checkpoint::canonical_to_hf(module, layout) + ".";
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

ExpertPair expert_tensors(model::Llama4Impl& model, const std::string& param) {
  const std::string module = param.substr(0, param.rfind('.'));
  LoraExpertsImpl* lora = find_lora_experts(moe_of(model, module));
  L4_ASSERT(lora != nullptr, "no LoRA experts on {}", module);
  if (ends_with(param, "gate_up_proj")) return {&lora->gate_up_proj_A, &lora->gate_up_proj_B};
  return {&lora->down_proj_A, &lora->down_proj_B};
}

// Top-level modules outside the language model whose parameters train: saved whole (modules_to_save).
std::vector<std::string> trained_extra_modules(model::Llama4Impl& model) {
  std::vector<std::string> out;
  if (!model.has_vision()) return out;
  for (const auto& [name, module] :
       {std::pair<std::string, torch::nn::Module*>{"vision_model", model.vision_model.get()},
        {"multi_modal_projector", model.multi_modal_projector.get()}}) {
    bool trains = false;
    for (const auto& p : module->parameters()) trains = trains || p.requires_grad();
    if (trains) out.push_back(name);
  }
  return out;
}

torch::nn::Module& extra_module(model::Llama4Impl& model, const std::string& name, const std::string& where) {
  L4_CHECK(name == "vision_model" || name == "multi_modal_projector",
           "{}: modules_to_save names '{}'; only vision_model and multi_modal_projector are supported", where,
           name);
  L4_CHECK(
      model.has_vision(),
      "{}: the adapter carries the trained {} (modules_to_save) of a multimodal model, but this model is "
      "text-only (no vision_config): apply it to a multimodal (Llama4ForConditionalGeneration) base, or "
      "use `llama4 export` on the run's checkpoint for a merged multimodal directory",
      where, name);
  return name == "vision_model" ? static_cast<torch::nn::Module&>(*model.vision_model)
                                : static_cast<torch::nn::Module&>(*model.multi_modal_projector);
}

}  // namespace

void write_peft_adapter(model::Llama4Impl& model, const LoraOptions& options, const std::string& dir,
                        const std::string& base_model) {
  const HfLayout layout = layout_of(model);
  const LoraInjection injection = lora_injection(model);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, linear] : lora_linears(model)) {
    const std::string key = kPrefix + checkpoint::canonical_to_hf(name, layout);
    tensors.emplace_back(key + ".lora_A.weight", linear->lora_A->weight.detach());
    tensors.emplace_back(key + ".lora_B.weight", linear->lora_B->weight.detach());
  }
  for (const auto& [param, key] : expert_keys(injection.expert_params, layout)) {
    const ExpertPair t = expert_tensors(model, param);
    const at::Tensor a = t.a->detach(), b = t.b->detach();  // A [E, r, out], B [E, in, r]
    const int64_t e = a.size(0), r = a.size(1);
    tensors.emplace_back(key + "lora_A.weight", a.reshape({e * r, a.size(2)}));
    tensors.emplace_back(key + "lora_B.weight", b.permute({1, 2, 0}).reshape({b.size(1), r * e}));
  }
  checkpoint::PeftAdapterConfig config;
  config.rank = options.rank;
  config.alpha = options.alpha;
  config.rslora = options.rslora;
  // PEFT applies no dropout to target_parameters; the adapter records 0 then.
  config.dropout = injection.expert_params.empty() ? options.dropout : 0.0;
  if (!injection.expert_params.empty() && options.dropout > 0.0) {
    L4_LOG_WARN("PEFT applies no dropout to target_parameters; the adapter records lora_dropout 0");
  }
  config.base_model = base_model;
  std::vector<std::string> all_linears, all_experts;
  candidate_names(model, all_linears, all_experts);
  config.target_modules = config_targets(injection.linear_modules, all_linears, layout);
  config.target_parameters = config_targets(injection.expert_params, all_experts, layout);
  // Compressed entries are "experts.gate_up_proj", which PEFT also matches by suffix; keep the feed_forward
  // component for readability.
  for (auto& t : config.target_parameters) {
    if (starts_with(t, "experts.")) t = "feed_forward." + t;
  }
  config.modules_to_save = trained_extra_modules(model);
  for (const std::string& name : config.modules_to_save) {
    for (const auto& item : extra_module(model, name, dir).named_parameters()) {
      tensors.emplace_back(kPrefix + name + "." + item.key(), item.value().detach());
    }
  }
  checkpoint::write_peft_adapter(dir, config, tensors);
  L4_LOG_INFO("wrote PEFT adapter ({} tensors{}) to {}", tensors.size(),
              config.modules_to_save.empty() ? "" : ", modules_to_save " + join(config.modules_to_save, ", "),
              dir);
}

LoraOptions load_peft_adapter(model::Llama4Impl& model, const std::string& dir) {
  const checkpoint::PeftAdapterFiles files = checkpoint::read_peft_adapter(dir);
  const std::string& weights_path = files.weights->path();
  // The layout of the model the adapter was written for (it may differ from ours: a text-only adapter on a
  // multimodal model adapts its language model alike).
  HfLayout layout = HfLayout::kCausalLM;
  for (const auto& e : files.weights->entries()) {
    if (starts_with(e.name, std::string(kPrefix) + "language_model."))
      layout = HfLayout::kConditionalGeneration;
  }
  LoraOptions options;
  options.rank = files.config.rank;
  options.alpha = files.config.alpha;
  options.rslora = files.config.rslora;
  options.targets.clear();
  for (const auto* list : {&files.config.target_modules, &files.config.target_parameters}) {
    for (const auto& t : *list) options.targets.push_back(checkpoint::hf_to_canonical(t, layout));
  }
  try {
    apply_lora(model, options, 0);
  } catch (const Error& e) {
    // Say which file is at odds with the model: an adapter written for another base names layers this one
    // lacks, and the bare "lora.targets" message would point at a recipe key the user never wrote.
    throw Error(
        fmt::format("{}/adapter_config.json: the adapter does not fit this base model (is it for "
                    "another one?): {}",
                    dir, e.what()));
  }
  const LoraInjection injection = lora_injection(model);

  const auto& file = *files.weights;
  std::set<std::string> unused;
  for (const auto& e : file.entries()) unused.insert(e.name);
  torch::NoGradGuard no_grad;
  auto load_into = [&](const std::string& key, at::Tensor& dest) {
    L4_CHECK(file.contains(key), "{}: missing tensor '{}'", weights_path, key);
    const at::Tensor t = file.load(key);
    L4_CHECK(t.sizes() == dest.sizes(), "{}: tensor '{}' has shape {}, expected {}", weights_path, key,
             c10::str(t.sizes()), c10::str(dest.sizes()));
    dest.copy_(t);
    unused.erase(key);
  };
  for (const auto& [name, linear] : lora_linears(model)) {
    const std::string key = kPrefix + checkpoint::canonical_to_hf(name, layout);
    load_into(key + ".lora_A.weight", linear->lora_A->weight);
    load_into(key + ".lora_B.weight", linear->lora_B->weight);
  }
  for (const auto& [param, key] : expert_keys(injection.expert_params, layout)) {
    const ExpertPair t = expert_tensors(model, param);
    const int64_t e = t.a->size(0), r = t.a->size(1), out = t.a->size(2), in = t.b->size(1);
    at::Tensor a = torch::empty({e * r, out}, t.a->options());
    at::Tensor b = torch::empty({in, r * e}, t.b->options());
    load_into(key + "lora_A.weight", a);
    load_into(key + "lora_B.weight", b);
    t.a->copy_(a.view({e, r, out}));
    t.b->copy_(b.view({in, r, e}).permute({2, 0, 1}));
  }
  for (const std::string& name : files.config.modules_to_save) {
    if (!model.has_vision() && model.arch().vision_config) {
      // A multimodal model built without its tower (text-only use): those tensors have nowhere to go.
      for (const auto& e : file.entries()) {
        if (starts_with(e.name, std::string(kPrefix) + name + ".")) unused.erase(e.name);
      }
      L4_LOG_INFO("{}: {} (modules_to_save) not loaded: the model was built without its vision tower", dir,
                  name);
      continue;
    }
    for (auto& item : extra_module(model, name, files.config_path).named_parameters()) {
      load_into(kPrefix + name + "." + item.key(), item.value());
    }
  }
  L4_CHECK(unused.empty(), "{}: {} tensor(s) match no targeted layer of this model, e.g. '{}'", weights_path,
           unused.size(), unused.empty() ? "" : *unused.begin());
  L4_LOG_INFO("loaded PEFT adapter {} (rank {}, alpha {})", dir, options.rank, options.alpha);
  return options;
}

}  // namespace l4::lora
