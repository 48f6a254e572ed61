// PEFT LoRA adapter directories as peft 0.21 writes and reads them:
//   adapter_config.json        peft_type LORA, r, lora_alpha, use_rslora, lora_dropout, target_modules
//   (linear
//                              layers), target_parameters (3-D parameters such as MoE expert tensors),
//                              modules_to_save (whole modules trained alongside, e.g. a projector)
//   adapter_model.safetensors  tensors under "base_model.model.<module>..." names
// This file knows the format only; which tensors go in (and their layout) is lora/peft_adapter.h's job.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/safetensors.h"

namespace l4::checkpoint {

inline constexpr const char* kPeftPrefix = "base_model.model.";

struct PeftAdapterConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool rslora = false;
  std::vector<std::string> target_modules;
  std::vector<std::string> target_parameters;
  std::vector<std::string> modules_to_save;
  std::string base_model;  // base_model_name_or_path
};

// Writes adapter_config.json and adapter_model.safetensors into `dir` (created), each atomically.
void write_peft_adapter(const std::string& dir, const PeftAdapterConfig& config,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors);

struct PeftAdapterFiles {
  std::string dir;
  std::string config_path;
  PeftAdapterConfig config;
  std::shared_ptr<SafetensorsFile> weights;
};

// Reads and validates adapter_config.json and opens adapter_model.safetensors. l4::Error naming the file
// for anything that is not a plain LoRA adapter we can apply exactly: another peft_type, DoRA, biases,
// fan_in_fan_out, rank/alpha patterns, layers_to_transform, regular-expression target_modules.
PeftAdapterFiles read_peft_adapter(const std::string& dir);

}  // namespace l4::checkpoint
