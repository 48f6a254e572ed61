// merge-lora without building the model: each output tensor is the base tensor read on its own from its
// shard, with the adapter's LoRA delta added in float32 and the sum cast back to the base's dtype, or the
// adapter's trained copy (modules_to_save), or the base bytes unchanged. Memory peaks at about one tensor
// in float32, so a 100B+ base merges on a machine that could not hold it.
#pragma once

#include <cstdint>
#include <string>

namespace l4::restore {

// Writes `output_dir` (model.safetensors or HF shards of at most max_shard_bytes, config.json and the
// tokenizer/generation files of `tokenizer`, default `model_dir`). l4::Error naming the file and key for an adapter tensor that
// matches no base tensor or whose shape does not fit it, for an output directory inside an input one, and for
// one that exists and is not empty unless `overwrite`. The output appears whole or not at all.
void merge_peft_streamed(const std::string& model_dir, const std::string& adapter_dir,
                         const std::string& output_dir, int64_t max_shard_bytes, bool overwrite = false,
                         const std::string& tokenizer = "");

}  // namespace l4::restore
