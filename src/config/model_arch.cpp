#include "config/model_arch.h"

#include <algorithm>

#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"

namespace l4::config {
namespace {

// Top level of the multimodal layout, for reading and writing.
struct ArchTopLevel {
  ModelArch* arch;
  bool has_vision_key;

  template <class V>
  void visit(V& v) {
    v.section("text_config", arch->text_config);
    if (has_vision_key) {
      if (!arch->vision_config) arch->vision_config.emplace();
      v.section("vision_config", *arch->vision_config);
    }
    v("boi_token_index", arch->boi_token_index);
    v("eoi_token_index", arch->eoi_token_index);
    v("image_token_index", arch->image_token_index);
  }
};

}  // namespace

bool TextConfig::is_moe_layer(int64_t layer) const {
  return std::find(moe_layers.begin(), moe_layers.end(), layer) != moe_layers.end();
}

bool TextConfig::is_rope_layer(int64_t layer) const {
  return layer >= 0 && layer < static_cast<int64_t>(no_rope_layers.size()) && no_rope_layers[layer] != 0;
}

void TextConfig::resolve() {
  if (!head_dim) head_dim = hidden_size / std::max<int64_t>(1, num_attention_heads);
  if (no_rope_layers.empty()) {
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
      no_rope_layers.push_back(no_rope_layer_interval > 0 && (i + 1) % no_rope_layer_interval != 0 ? 1 : 0);
    }
  }
  if (moe_layers.empty() && interleave_moe_layer_step > 0) {
    for (int64_t i = interleave_moe_layer_step - 1; i < num_hidden_layers; i += interleave_moe_layer_step) {
      moe_layers.push_back(i);
    }
  }
  if (layer_types.empty()) {
    for (int64_t flag : no_rope_layers) layer_types.push_back(flag ? "chunked_attention" : "full_attention");
  }
}

ModelArch read_model_arch(const YamlDocument& doc, Strictness strictness, ConfigErrors& errors) {
  ModelArch arch;
  arch.source = doc.origin();
  if (doc.has("text_config")) {
    ArchTopLevel top{&arch, doc.has("vision_config")};
    doc.read(top, errors, strictness);
    if (strictness == Strictness::kLenient) {
      // HF files may carry the legacy rope_theta / rope_scaling keys: re-read from normalised copies.
      YamlDocument text = doc.subdocument("text_config");
      text.normalise_rope_keys();
      text.read(arch.text_config, errors, strictness);
      if (arch.vision_config) {
        YamlDocument vision = doc.subdocument("vision_config");
        vision.normalise_rope_keys();
        vision.read(*arch.vision_config, errors, strictness);
      }
    }
  } else {
    YamlDocument text = doc;
    if (strictness == Strictness::kLenient) text.normalise_rope_keys();
    text.read(arch.text_config, errors, strictness);
  }
  arch.text_config.resolve();
  validate_model_arch(arch, doc, doc.has("text_config") ? "text_config" : "", "vision_config", errors);
  return arch;
}

ModelArch load_model_arch(const std::string& path) {
  std::string file = path;
  if (is_directory(path)) file = path + "/config.json";
  // Our own YAML configs are strict; foreign JSON (HF) carries many keys we do not use.
  const Strictness strictness = ends_with(file, ".json") ? Strictness::kLenient : Strictness::kStrict;
  YamlDocument doc = YamlDocument::load_file(file);
  ConfigErrors errors;
  ModelArch arch = read_model_arch(doc, strictness, errors);
  errors.throw_if_any();
  return arch;
}

void validate_model_arch(const ModelArch& arch, const YamlDocument& doc, const std::string& text_prefix,
                         const std::string& vision_prefix, ConfigErrors& errors) {
  const TextConfig& t = arch.text_config;
  auto key = [&](const std::string& name) { return text_prefix.empty() ? name : text_prefix + "." + name; };
  auto check = [&](bool ok, const std::string& name, const std::string& problem) {
    if (!ok) errors.add(doc.location(key(name)), key(name), problem);
  };
  auto positive = [&](int64_t value, const char* name) {
    check(value > 0, name, fmt::format("must be > 0, got {}", value));
  };
  positive(t.vocab_size, "vocab_size");
  positive(t.hidden_size, "hidden_size");
  positive(t.intermediate_size, "intermediate_size");
  positive(t.intermediate_size_mlp, "intermediate_size_mlp");
  positive(t.num_hidden_layers, "num_hidden_layers");
  positive(t.num_attention_heads, "num_attention_heads");
  positive(t.num_key_value_heads, "num_key_value_heads");
  positive(t.resolved_head_dim(), "head_dim");
  positive(t.num_local_experts, "num_local_experts");
  positive(t.floor_scale, "floor_scale");
  check(t.num_key_value_heads <= 0 || t.num_attention_heads % t.num_key_value_heads == 0, "num_key_value_heads",
        fmt::format("must divide num_attention_heads ({}), got {}", t.num_attention_heads, t.num_key_value_heads));
  check(t.resolved_head_dim() % 2 == 0, "head_dim", fmt::format("must be even for RoPE, got {}", t.resolved_head_dim()));
  check(t.num_experts_per_tok >= 1 && t.num_experts_per_tok <= t.num_local_experts, "num_experts_per_tok",
        fmt::format("must be in [1, num_local_experts={}], got {}", t.num_local_experts, t.num_experts_per_tok));
  check(t.hidden_act == "silu", "hidden_act", fmt::format("only 'silu' is supported, got '{}'", t.hidden_act));
  check(t.rms_norm_eps > 0, "rms_norm_eps", fmt::format("must be > 0, got {}", t.rms_norm_eps));
  check(!t.attention_chunk_size || *t.attention_chunk_size > 0, "attention_chunk_size",
        "must be > 0 or null");
  check(static_cast<int64_t>(t.no_rope_layers.size()) == t.num_hidden_layers, "no_rope_layers",
        fmt::format("must have num_hidden_layers={} entries, got {}", t.num_hidden_layers, t.no_rope_layers.size()));
  for (int64_t flag : t.no_rope_layers) {
    check(flag == 0 || flag == 1, "no_rope_layers", fmt::format("entries must be 0 (NoPE) or 1 (RoPE), got {}", flag));
  }
  for (int64_t layer : t.moe_layers) {
    check(layer >= 0 && layer < t.num_hidden_layers, "moe_layers",
          fmt::format("layer {} is outside [0, {})", layer, t.num_hidden_layers));
  }
  const std::string& rope_type = t.rope_parameters.rope_type;
  check(rope_type == "default" || rope_type == "llama3", "rope_parameters.rope_type",
        fmt::format("expected 'default' or 'llama3', got '{}'", rope_type));
  check(t.rope_parameters.rope_theta > 0, "rope_parameters.rope_theta", "must be > 0");
  if (rope_type == "llama3") {
    check(t.rope_parameters.factor > 0, "rope_parameters.factor", "must be > 0");
    check(t.rope_parameters.original_max_position_embeddings > 0,
          "rope_parameters.original_max_position_embeddings", "must be > 0");
  }
  if (arch.vision_config) {
    const VisionConfig& v = *arch.vision_config;
    auto vkey = [&](const char* name) { return vision_prefix + "." + name; };
    auto vcheck = [&](bool ok, const char* name, const std::string& problem) {
      if (!ok) errors.add(doc.location(vkey(name)), vkey(name), problem);
    };
    vcheck(v.hidden_size > 0 && v.num_attention_heads > 0 && v.hidden_size % v.num_attention_heads == 0,
           "num_attention_heads", "must divide hidden_size");
    vcheck(v.patch_size > 0 && v.image_size % v.patch_size == 0, "patch_size",
           fmt::format("must divide image_size ({}), got {}", v.image_size, v.patch_size));
    vcheck(v.pixel_shuffle_ratio > 0 && v.pixel_shuffle_ratio <= 1, "pixel_shuffle_ratio", "must be in (0, 1]");
  }
}

std::string model_arch_to_yaml(const ModelArch& arch) {
  ModelArch copy = arch;
  ArchTopLevel top{&copy, copy.vision_config.has_value()};
  return to_yaml(top);
}

}  // namespace l4::config
