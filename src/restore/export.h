// Writing a restored model out for other tools: a merged Hugging Face model directory (LoRA folded into the
// base weights; the vision tower and the trained projector included for a multimodal model, as a
// Llama4ForConditionalGeneration directory) or a PEFT adapter (lora/peft_adapter.h). Every trained tensor
// the model holds goes out: nothing the run trained is dropped.
#pragma once

#include <cstdint>
#include <string>

#include "restore/restore.h"
#include "restore/sharded_writer.h"

namespace l4::restore {

// config.json comes from the base directory when its layout is the model's, else from the architecture;
// tokenizer files from `restored.tokenizer` (or the base directory). Each tensor the base has keeps the
// base's dtype (a bf16 base gives bf16 files); weights go in HF shards of at most max_shard_bytes
// (model.safetensors when they fit in one). l4::Error when output_dir is the base or checkpoint directory
// or inside one, and when it exists and is not empty unless `overwrite`. The directory appears whole or not
// at all (core/staged_output_dir.h): a failure leaves a previous output as it was.
void write_merged_model(RestoredModel& restored, const std::string& output_dir,
                        int64_t max_shard_bytes = kDefaultMaxShardBytes, bool overwrite = false);

// l4::Error when the model carries no LoRA; the same output rules as write_merged_model.
void write_adapter(RestoredModel& restored, const std::string& output_dir, bool overwrite = false);

}  // namespace l4::restore
