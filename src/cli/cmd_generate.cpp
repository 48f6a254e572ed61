// llama4 generate: chat generation with a KV cache
#include "cli/commands.h"

namespace l4::cli {

Command make_generate_command() {
  return {{"generate",
           "chat generation with a KV cache",
           "--model DIR [--adapter DIR] --prompt TEXT [--image F]",
           {{"model", "DIR", "HF model directory"}, {"adapter", "DIR", "PEFT adapter directory"}, {"prompt", "TEXT", "user message"}, {"image", "FILE", "image for the prompt", true}, {"max-tokens", "N", "tokens to generate"}, {"temperature", "T", "0 = greedy"}, {"top-p", "P", "nucleus sampling"}},
           /*accepts_overrides=*/false},
          [](const ParsedArgs&) { return not_available("generate"); }};
}

}  // namespace l4::cli
