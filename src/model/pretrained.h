// Hugging Face model directories -> the text model: config.json (text-only Llama4ForCausalLM or multimodal
// Llama4ForConditionalGeneration layout) and safetensors weights, every name and shape checked.
#pragma once

#include <string>

#include "checkpoint/model_weights.h"
#include "config/model_arch.h"
#include "model/llama4_model.h"

namespace l4::model {

// Copies the checkpoint's text-model tensors into `model` (converting dtype/device). Throws one l4::Error
// listing every missing, unexpected or misshapen tensor. A multimodal checkpoint's vision tower and
// projector are not text-model tensors and are skipped here.
void load_text_weights(Llama4ForCausalLMImpl& model, const checkpoint::ModelWeights& weights);

// The check alone (no tensor is read or allocated): throws l4::Error listing every problem.
void check_text_weights(const config::TextConfig& config, const checkpoint::ModelWeights& weights);

struct PretrainedText {
  config::ModelArch arch;
  Llama4ForCausalLM model{nullptr};
};

// config::load_model_arch(dir) + a model of its text_config + load_text_weights.
PretrainedText load_pretrained_text(const std::string& dir, const ModelOptions& options = {});

}  // namespace l4::model
