// llama4 merge-lora: fold a PEFT LoRA adapter into its base model and write an HF model directory.
#include "cli/commands.h"
#include "restore/export.h"
#include "restore/restore.h"

namespace l4::cli {
namespace {

int run_merge_lora(const ParsedArgs& args) {
  const std::string model_dir = args.require("model", "merge-lora");
  const std::string adapter = args.require("adapter", "merge-lora");
  const std::string output = args.require("output", "merge-lora");
  restore::RestoredModel restored = restore::from_hf_dir(model_dir, adapter);
  restore::write_merged_model(restored, output);
  return 0;
}

}  // namespace

Command make_merge_lora_command() {
  return {{"merge-lora",
           "merge a LoRA adapter into the base weights",
           "--model DIR --adapter DIR --output DIR",
           {{"model", "DIR", "HF model directory"},
            {"adapter", "DIR", "PEFT adapter directory"},
            {"output", "DIR", "merged HF model directory (config.json, safetensors, tokenizer files)"}},
           /*accepts_overrides=*/false},
          run_merge_lora};
}

}  // namespace l4::cli
