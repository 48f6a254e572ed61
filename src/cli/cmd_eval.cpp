// llama4 eval: loss and perplexity of a recipe's eval split, for the checkpoint the recipe would resume
// from (checkpoint.resume: auto = latest valid, a step directory, or none = the initial weights).
#include "cli/commands.h"
#include "config/recipe.h"
#include "train/trainer.h"

namespace l4::cli {
namespace {

int run_eval(const ParsedArgs& args) {
  std::vector<std::string> overrides = args.positionals();
  if (args.has("checkpoint")) overrides.push_back("checkpoint.resume=" + args.get("checkpoint"));
  const config::Recipe recipe = config::load_recipe(args.require("config", "eval"), overrides);
  train::TrainerOptions options;
  options.eval_only = true;
  return train::run_training(recipe, options);
}

}  // namespace

Command make_eval_command() {
  return {{"eval",
           "loss and perplexity on the eval split",
           "--config RECIPE.yaml [--checkpoint DIR] [key.path=value ...]",
           {{"config", "FILE", "recipe YAML"},
            {"checkpoint", "DIR", "step_N checkpoint to evaluate (default: checkpoint.resume, i.e. the latest)"}},
           /*accepts_overrides=*/true},
          run_eval};
}

}  // namespace l4::cli
