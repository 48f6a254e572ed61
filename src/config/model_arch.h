// Model architecture, field names exactly as Hugging Face's Llama4TextConfig / Llama4VisionConfig /
// Llama4Config, so that an HF config.json maps 1:1. Plain data: no torch here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/yaml_document.h"

namespace l4::config {

struct RopeParameters {
  std::string rope_type = "default";  // "default" or "llama3"
  double rope_theta = 500000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;

  template <class V>
  void visit(V& v) {
    v("rope_type", rope_type);
    v("rope_theta", rope_theta);
    v("factor", factor);
    v("low_freq_factor", low_freq_factor);
    v("high_freq_factor", high_freq_factor);
    v("original_max_position_embeddings", original_max_position_embeddings);
  }
};

struct TextConfig {
  int64_t vocab_size = 202048;
  int64_t hidden_size = 5120;
  int64_t intermediate_size = 8192;       // routed experts and the shared expert
  int64_t intermediate_size_mlp = 16384;  // dense SwiGLU layers
  int64_t num_hidden_layers = 48;
  int64_t num_attention_heads = 40;
  int64_t num_key_value_heads = 8;
  std::optional<int64_t> head_dim;  // null -> hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 131072;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-5;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id = 1;
  std::vector<int64_t> eos_token_id = {2};
  bool tie_word_embeddings = false;
  double attention_dropout = 0.0;
  int64_t num_experts_per_tok = 1;
  int64_t num_local_experts = 16;
  std::vector<int64_t> moe_layers;  // empty -> from interleave_moe_layer_step
  int64_t interleave_moe_layer_step = 1;
  bool use_qk_norm = true;
  bool output_router_logits = false;
  double router_aux_loss_coef = 0.001;
  double router_jitter_noise = 0.0;
  RopeParameters rope_parameters;
  std::vector<int64_t> no_rope_layers;  // 1 = RoPE layer, 0 = NoPE; empty -> from no_rope_layer_interval
  int64_t no_rope_layer_interval = 4;
  std::optional<int64_t> attention_chunk_size = 8192;
  std::vector<std::string> layer_types;  // derived: chunked_attention | full_attention
  bool attn_temperature_tuning = true;
  int64_t floor_scale = 8192;
  double attn_scale = 0.1;
  bool attention_bias = false;

  template <class V>
  void visit(V& v) {
    v("vocab_size", vocab_size);
    v("hidden_size", hidden_size);
    v("intermediate_size", intermediate_size);
    v("intermediate_size_mlp", intermediate_size_mlp);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("num_key_value_heads", num_key_value_heads);
    v("head_dim", head_dim);
    v("hidden_act", hidden_act);
    v("max_position_embeddings", max_position_embeddings);
    v("initializer_range", initializer_range);
    v("rms_norm_eps", rms_norm_eps);
    v("pad_token_id", pad_token_id);
    v("bos_token_id", bos_token_id);
    v("eos_token_id", eos_token_id);
    v("tie_word_embeddings", tie_word_embeddings);
    v("attention_dropout", attention_dropout);
    v("num_experts_per_tok", num_experts_per_tok);
    v("num_local_experts", num_local_experts);
    v("moe_layers", moe_layers);
    v("interleave_moe_layer_step", interleave_moe_layer_step);
    v("use_qk_norm", use_qk_norm);
    v("output_router_logits", output_router_logits);
    v("router_aux_loss_coef", router_aux_loss_coef);
    v("router_jitter_noise", router_jitter_noise);
    v.section("rope_parameters", rope_parameters);
    v("no_rope_layers", no_rope_layers);
    v("no_rope_layer_interval", no_rope_layer_interval);
    v("attention_chunk_size", attention_chunk_size);
    v("layer_types", layer_types);
    v("attn_temperature_tuning", attn_temperature_tuning);
    v("floor_scale", floor_scale);
    v("attn_scale", attn_scale);
    v("attention_bias", attention_bias);
  }

  // Derived values, as HF's __post_init__ computes them.
  int64_t resolved_head_dim() const { return head_dim ? *head_dim : hidden_size / num_attention_heads; }
  bool is_moe_layer(int64_t layer) const;
  bool is_rope_layer(int64_t layer) const;
  // Fills head_dim, moe_layers, no_rope_layers and layer_types where absent.
  void resolve();
};

struct VisionConfig {
  int64_t hidden_size = 768;
  std::string hidden_act = "gelu";
  int64_t num_hidden_layers = 34;
  int64_t num_attention_heads = 16;
  int64_t num_channels = 3;
  int64_t intermediate_size = 5632;
  int64_t vision_output_dim = 7680;
  int64_t image_size = 448;
  int64_t patch_size = 14;
  double norm_eps = 1e-5;
  std::string vision_feature_select_strategy = "default";
  int64_t vision_feature_layer = -1;
  double initializer_range = 0.02;
  double pixel_shuffle_ratio = 0.5;
  int64_t projector_input_dim = 4096;
  int64_t projector_output_dim = 4096;
  bool multi_modal_projector_bias = false;
  double projector_dropout = 0.0;
  double attention_dropout = 0.0;
  RopeParameters rope_parameters{"default", 10000.0};

  template <class V>
  void visit(V& v) {
    v("hidden_size", hidden_size);
    v("hidden_act", hidden_act);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("num_channels", num_channels);
    v("intermediate_size", intermediate_size);
    v("vision_output_dim", vision_output_dim);
    v("image_size", image_size);
    v("patch_size", patch_size);
    v("norm_eps", norm_eps);
    v("vision_feature_select_strategy", vision_feature_select_strategy);
    v("vision_feature_layer", vision_feature_layer);
    v("initializer_range", initializer_range);
    v("pixel_shuffle_ratio", pixel_shuffle_ratio);
    v("projector_input_dim", projector_input_dim);
    v("projector_output_dim", projector_output_dim);
    v("multi_modal_projector_bias", multi_modal_projector_bias);
    v("projector_dropout", projector_dropout);
    v("attention_dropout", attention_dropout);
    v.section("rope_parameters", rope_parameters);
  }
};

// The whole architecture: text decoder, optionally the vision tower and the fusion token ids.
struct ModelArch {
  TextConfig text_config;
  std::optional<VisionConfig> vision_config;
  int64_t boi_token_index = 200080;
  int64_t eoi_token_index = 200081;
  int64_t image_token_index = 200092;  // <|patch|>
  std::string source;                  // file it was read from, for messages
};

// Reads the architecture from a document in any of the accepted layouts:
//   {text_config: {...}, vision_config: {...}, image_token_index: ...}   (HF Llama4Config / our configs/)
//   {hidden_size: ..., num_hidden_layers: ...}                              (HF Llama4TextConfig, text only)
// Problems go to `errors`; the result is resolved (derived fields filled) and validated.
ModelArch read_model_arch(const YamlDocument& doc, Strictness strictness, ConfigErrors& errors);

// Loads configs/*.yaml (strict) or an HF config.json / model directory (lenient); throws on problems.
ModelArch load_model_arch(const std::string& path);

// Validates value ranges and cross-field constraints; messages name doc locations. The prefixes are the
// key paths of the text and vision sections within `doc` ("text_config", "model.text_config", "").
void validate_model_arch(const ModelArch& arch, const YamlDocument& doc, const std::string& text_prefix,
                         const std::string& vision_prefix, ConfigErrors& errors);

// YAML of the architecture in our configs/ layout.
std::string model_arch_to_yaml(const ModelArch& arch);

}  // namespace l4::config
