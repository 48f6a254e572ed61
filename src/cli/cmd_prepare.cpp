// llama4 prepare: JSONL/text (+images) -> HDF5 dataset shards
#include "cli/commands.h"

namespace l4::cli {

Command make_prepare_command() {
  return {{"prepare",
           "JSONL/text (+images) -> HDF5 dataset shards",
           "--config RECIPE.yaml | --input FILE... --output DIR --tokenizer T [--format text|jsonl|chat]",
           {{"config", "FILE", "recipe whose data.sources to prepare"}, {"input", "FILE...", "input files", true}, {"output", "DIR", "dataset directory"}, {"tokenizer", "T", "tokenizer.model, tokenizer.json or a directory"}, {"format", "FMT", "text, jsonl or chat"}},
           /*accepts_overrides=*/true},
          [](const ParsedArgs&) { return not_available("prepare"); }};
}

}  // namespace l4::cli
