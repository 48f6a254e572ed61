// llama4 merge-lora: merge a LoRA adapter into the base weights
#include "cli/commands.h"

namespace l4::cli {

Command make_merge_lora_command() {
  return {{"merge-lora",
           "merge a LoRA adapter into the base weights",
           "--model DIR --adapter DIR --output DIR",
           {{"model", "DIR", "HF model directory"}, {"adapter", "DIR", "PEFT adapter directory"}, {"output", "DIR", "merged HF model directory"}},
           /*accepts_overrides=*/false},
          [](const ParsedArgs&) { return not_available("merge-lora"); }};
}

}  // namespace l4::cli
