// llama4 train: runs a recipe. --print-config validates and prints the resolved recipe.
#include <cstdio>

#include "cli/commands.h"
#include "config/recipe.h"
#include "core/log.h"
#include "train/trainer.h"

namespace l4::cli {
namespace {

int run_train(const ParsedArgs& args) {
  const config::Recipe recipe = config::load_recipe(args.require("config", "train"), args.positionals());
  if (args.has("print-config")) {
    std::fputs(config::recipe_to_yaml(recipe).c_str(), stdout);
    return 0;
  }
  if (!args.has("log-level"))
    log::set_level(log::parse_level(config::name_of(recipe.logging.level)));  // the flag wins
  train::TrainerOptions options;
  options.print_param_groups = args.has("print-param-groups");
  return train::run_training(recipe, options);
}

}  // namespace

Command make_train_command() {
  return {{"train",
           "train or fine-tune per recipe (launch with mpirun for several ranks)",
           "--config RECIPE.yaml [key.path=value ...]",
           {{"config", "FILE", "recipe YAML"},
            {"print-config", "", "print the fully resolved config (defaults included) and exit"},
            {"print-param-groups", "",
             "print every parameter's optimizer group, lr and weight decay, then exit"}},
           /*accepts_overrides=*/true},
          run_train};
}

}  // namespace l4::cli
