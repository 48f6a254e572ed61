// llama4 merge-lora: fold a PEFT LoRA adapter into its base model and write an HF model directory, tensor by
// tensor (restore/streaming_merge.h): the base is never held in memory whole.
#include "cli/commands.h"
#include "restore/sharded_writer.h"
#include "restore/streaming_merge.h"

namespace l4::cli {
namespace {

int run_merge_lora(const ParsedArgs& args) {
  const std::string model_dir = args.require("model", "merge-lora");
  const std::string adapter = args.require("adapter", "merge-lora");
  const std::string output = args.require("output", "merge-lora");
  const int64_t max_shard =
      restore::parse_shard_size(args.get("max-shard-size", "5GB"), "merge-lora --max-shard-size");
  restore::merge_peft_streamed(model_dir, adapter, output, max_shard, args.has("overwrite"));
  return 0;
}

}  // namespace

Command make_merge_lora_command() {
  return {{"merge-lora",
           "merge a LoRA adapter into the base weights",
           "--model DIR --adapter DIR --output DIR [--max-shard-size SIZE] [--overwrite]",
           {{"model", "DIR", "HF model directory"},
            {"adapter", "DIR", "PEFT adapter directory"},
            {"output", "DIR", "merged HF model directory (config.json, safetensors, tokenizer files)"},
            {"max-shard-size", "SIZE", "largest weights file: 5GB (default), 500MB, bytes"},
            {"overwrite", "",
             "replace an existing non-empty output directory (only once the new one is complete)"}},
           /*accepts_overrides=*/false},
          run_merge_lora};
}

}  // namespace l4::cli
