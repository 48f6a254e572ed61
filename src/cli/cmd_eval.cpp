// llama4 eval: loss and perplexity on the eval split
#include "cli/commands.h"

namespace l4::cli {

Command make_eval_command() {
  return {{"eval",
           "loss and perplexity on the eval split",
           "--config RECIPE.yaml [key.path=value ...]",
           {{"config", "FILE", "recipe YAML"}, {"checkpoint", "DIR", "checkpoint to evaluate (default: the recipe's latest)"}},
           /*accepts_overrides=*/true},
          [](const ParsedArgs&) { return not_available("eval"); }};
}

}  // namespace l4::cli
