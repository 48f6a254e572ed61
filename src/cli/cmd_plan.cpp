// llama4 plan: per-rank memory, FLOPs and communication of a recipe's layout, from shapes alone.
#include <cstdio>

#include "cli/commands.h"
#include "config/recipe.h"
#include "core/error.h"
#include "train/memory_plan.h"

namespace l4::cli {
namespace {

int run_plan(const ParsedArgs& args) {
  const std::string path = args.require("config", "plan");
  const config::Recipe recipe = config::load_recipe(path, args.positionals());
  L4_CHECK(args.has("world"), "llama4 plan: --world N (the number of ranks, one per GPU) is required");
  const long long world = args.get_int("world", 0);
  L4_CHECK(world >= 1, "llama4 plan: --world must be a positive integer, got '{}'", args.get("world"));
  train::PlanInputs inputs = train::plan_inputs_from_recipe(recipe, world);
  inputs.gpu_memory_gb = args.get_double("gpu-memory-gb", inputs.gpu_memory_gb);
  if (args.has("device")) inputs.device = args.get("device");
  // train.activation_checkpointing, overridable here; then memory features the recipe cannot name yet.
  if (args.has("activation-checkpointing"))
    inputs.activation_checkpointing = args.get("activation-checkpointing");
  if (args.has("zero")) inputs.zero = args.get_int("zero", inputs.zero);
  if (args.has("chunked-ce")) inputs.chunked_cross_entropy = true;
  if (args.has("ce-chunk")) inputs.cross_entropy_chunk = args.get_int("ce-chunk", inputs.cross_entropy_chunk);
  if (args.has("master-weights")) inputs.fp32_master_weights = true;
  if (args.has("buckets-in-flight")) {
    inputs.buckets_in_flight = args.get_int("buckets-in-flight", inputs.buckets_in_flight);
  }
  const train::MemoryPlan plan = train::plan_memory(inputs);
  const std::string text = args.has("json") ? train::plan_to_json(plan) + "\n" : train::format_plan(plan);
  std::fputs(text.c_str(), stdout);
  return 0;
}

}  // namespace

Command make_plan_command() {
  return {
      {"plan",
       "per-rank memory (weights, gradients, optimizer, activations, buffers), FLOPs and all-to-all share",
       "--config RECIPE.yaml --world N [--json] [--gpu-memory-gb 80] [key.path=value ...]",
       {{"config", "FILE", "recipe YAML (its model, data, parallel, lora, train sections)"},
        {"world", "N", "number of ranks (one per GPU)"},
        {"json", "", "print one JSON object"},
        {"gpu-memory-gb", "GB", "memory per rank for the verdict, GiB (default 80)"},
        {"device", "cpu|cuda", "plan for this device instead of train.device"},
        {"activation-checkpointing", "none|moe|full",
         "recompute in backward (default: train.activation_checkpointing)"},
        {"zero", "0|1|2", "shard AdamW state (1) and gradients (2) of replicated parameters (default 0)"},
        {"chunked-ce", "", "cross-entropy in token chunks (no [tokens, vocab] float32 logits)"},
        {"ce-chunk", "TOKENS", "tokens per cross-entropy chunk (default 1024)"},
        {"master-weights", "", "fp32 master weights and AdamW state for bfloat16 parameters"},
        {"buckets-in-flight", "N", "gradient buckets flattened at once (default 0: all, as today)"}},
       /*accepts_overrides=*/true},
      run_plan};
}

}  // namespace l4::cli
