// Writing a restored model out for other tools: a merged Hugging Face model directory (LoRA folded into the
// base weights; the vision tower and the trained projector included for a multimodal model, as a
// Llama4ForConditionalGeneration directory) or a PEFT adapter (lora/peft_adapter.h). Every trained tensor
// the model holds goes out: nothing the run trained is dropped.
#pragma once

#include <string>

#include "restore/restore.h"

namespace l4::restore {

// config.json comes from the base directory when its layout is the model's, else from the architecture;
// tokenizer files from `restored.tokenizer` (or the base directory).
void write_merged_model(RestoredModel& restored, const std::string& output_dir);

// l4::Error when the model carries no LoRA.
void write_adapter(RestoredModel& restored, const std::string& output_dir);

}  // namespace l4::restore
