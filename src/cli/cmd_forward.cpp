// llama4 forward: logits for input_ids (and pixel_values) from a safetensors file
#include "cli/commands.h"

namespace l4::cli {

Command make_forward_command() {
  return {{"forward",
           "logits for input_ids (and pixel_values) from a safetensors file",
           "--model DIR --input IN.safetensors --output OUT.safetensors",
           {{"model", "DIR", "HF model directory"}, {"input", "FILE", "safetensors with input_ids int64 [B,T]"}, {"output", "FILE", "safetensors to write logits float32 [B,T,V]"}},
           /*accepts_overrides=*/false},
          [](const ParsedArgs&) { return not_available("forward"); }};
}

}  // namespace l4::cli
