// llama4 info: architecture summary computed from shapes (never allocates the weights).
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "config/model_arch.h"
#include "config/recipe.h"
#include "config/yaml_document.h"
#include "core/error.h"
#include "core/file_io.h"
#include "model/param_count.h"

namespace l4::cli {
namespace {

std::string billions(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

config::ModelArch load_arch_for_info(const ParsedArgs& args) {
  if (args.has("model")) return config::load_model_arch(args.get("model"));
  const std::string path = args.require("config", "info");
  // A recipe (has a top-level 'model' section) or an architecture file.
  const config::YamlDocument doc = config::YamlDocument::load_file(path);
  if (doc.has("model")) return config::load_recipe(path, args.positionals()).arch;
  return config::load_model_arch(path);
}

int run_info(const ParsedArgs& args) {
  L4_CHECK(args.has("config") != args.has("model"), "llama4 info: give exactly one of --config or --model");
  const config::ModelArch arch = load_arch_for_info(args);
  const model::ParamSummary summary = model::count_params(arch);
  const config::TextConfig& t = arch.text_config;
  if (args.has("json")) {
    nlohmann::json out;
    out["total_params"] = summary.total_params();
    out["active_params"] = summary.active_params();
    out["text_params"] = summary.text_params;
    out["vision_params"] = summary.vision_params;
    out["num_local_experts"] = t.num_local_experts;
    out["num_experts_per_tok"] = t.num_experts_per_tok;
    out["layers"] = nlohmann::json::array();
    for (const auto& layer : summary.layers) {
      out["layers"].push_back({{"moe", layer.moe}, {"rope", layer.rope}, {"params", layer.params}});
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::string text = fmt::format("model: {}\n", arch.source);
  text += fmt::format("  total parameters : {} ({})\n", billions(summary.total_params()), summary.total_params());
  text += fmt::format("  active per token : {} ({})\n", billions(summary.active_params()), summary.active_params());
  text += fmt::format("  text model       : {}\n", billions(summary.text_params));
  text += fmt::format("  vision tower     : {}\n", arch.vision_config ? billions(summary.vision_params) : "none");
  text += fmt::format("  hidden {} | heads {} (kv {}) x {} | vocab {} | experts {} (top-{}) | chunk {}\n",
                      t.hidden_size, t.num_attention_heads, t.num_key_value_heads, t.resolved_head_dim(),
                      t.vocab_size, t.num_local_experts, t.num_experts_per_tok,
                      t.attention_chunk_size ? std::to_string(*t.attention_chunk_size) : "none");
  text += "  layer  ffn    attention          params\n";
  for (size_t i = 0; i < summary.layers.size(); ++i) {
    const auto& layer = summary.layers[i];
    text += fmt::format("  {:>5}  {:<5}  {:<17}  {}\n", i, layer.moe ? "MoE" : "dense",
                        layer.rope ? "RoPE (chunked)" : "NoPE (global)", billions(layer.params));
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

}  // namespace

Command make_info_command() {
  return {{"info",
           "architecture summary: total and active parameter counts, per-layer kinds",
           "(--config C.yaml | --model DIR) [--json]",
           {{"config", "FILE", "architecture (configs/*.yaml, config.json) or a recipe"},
            {"model", "DIR", "HF model directory (reads its config.json)"},
            {"json", "", "print one JSON object (total_params, active_params, layers)"}},
           /*accepts_overrides=*/true},
          run_info};
}

}  // namespace l4::cli
