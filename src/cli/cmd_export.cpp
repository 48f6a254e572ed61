// llama4 export: training checkpoint -> HF model or PEFT adapter
#include "cli/commands.h"

namespace l4::cli {

Command make_export_command() {
  return {{"export",
           "training checkpoint -> HF model or PEFT adapter",
           "--checkpoint DIR --output DIR [--peft]",
           {{"checkpoint", "DIR", "step_N checkpoint directory"}, {"output", "DIR", "output directory"}, {"peft", "", "write a PEFT adapter instead of a full model"}},
           /*accepts_overrides=*/false},
          [](const ParsedArgs&) { return not_available("export"); }};
}

}  // namespace l4::cli
