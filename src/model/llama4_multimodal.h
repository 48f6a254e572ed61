// HF Llama4ForConditionalGeneration: the text model with early fusion of images. Text embeddings first, then
// the vision features of every tile (vision tower -> projector), in order, over the <|patch|>
// (image_token_index) positions; the decoder runs on the fused embeddings. named_parameters() equal HF's
// state-dict names: "language_model.model.*", "language_model.lm_head.*", "vision_model.*",
// "multi_modal_projector.*".
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <string>

#include "checkpoint/model_weights.h"
#include "config/model_arch.h"
#include "model/llama4_model.h"
#include "model/vision_encoder.h"
#include "model/vision_projector.h"

namespace l4::model {

class Llama4ForConditionalGenerationImpl : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialised: load weights or call reset_parameters(). Throws l4::Error when
  // the architecture has no vision_config.
  Llama4ForConditionalGenerationImpl(const config::ModelArch& arch, const ModelOptions& options = {});
  // Around an existing text model (its parameters are shared, not copied).
  Llama4ForConditionalGenerationImpl(const config::ModelArch& arch, Llama4ForCausalLM language_model,
                                     const ModelOptions& options = {});

  // Logits [B, T, V]. pixel_values: [N tiles, 3, S, S] normalised (any float dtype; HF's are bf16 values),
  // one tile per 144-token (tokens_per_tile) block of <|patch|> ids in row-major order; without it the
  // <|patch|> ids keep their text embeddings (HF).
  at::Tensor forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& pixel_values = std::nullopt,
                     const std::optional<at::Tensor>& position_ids = std::nullopt,
                     const std::optional<at::Tensor>& doc_ids = std::nullopt);
  // The decoder's input: text embeddings with the image features scattered in ([B, T, D]).
  at::Tensor fused_embeddings(const at::Tensor& input_ids, const std::optional<at::Tensor>& pixel_values);

  // A frozen vision tower runs without autograd and its parameters do not require grad; the projector
  // still trains.
  void set_freeze_vision(bool frozen);
  bool vision_frozen() const { return freeze_vision_; }

  // Text model as Llama4ForCausalLM::reset_parameters, vision tower and projector as HF initialises them.
  void reset_parameters(const std::optional<uint64_t>& seed = std::nullopt);

  const config::ModelArch& arch() const { return arch_; }

  Llama4ForCausalLM language_model{nullptr};
  VisionModel vision_model{nullptr};
  MultiModalProjector multi_modal_projector{nullptr};

 private:
  config::ModelArch arch_;
  bool freeze_vision_ = false;
};
TORCH_MODULE(Llama4ForConditionalGeneration);

// Our module name -> the checkpoint's canonical name (checkpoint/name_mapping.h): "language_model." is
// dropped, vision_model.* and multi_modal_projector.* stay.
std::string multimodal_canonical_name(const std::string& module_name);

// Loads an HF checkpoint into the multimodal model, every name and shape checked first (one l4::Error
// listing every problem). A multimodal checkpoint fills every parameter; a text-only (Llama4ForCausalLM)
// checkpoint fills the text model and leaves the vision tower and projector as they are.
void load_multimodal_weights(Llama4ForConditionalGenerationImpl& model, const checkpoint::ModelWeights& weights);
// Only the vision tower and projector of a multimodal checkpoint (an l4::Error for a text-only one).
void load_vision_weights(Llama4ForConditionalGenerationImpl& model, const checkpoint::ModelWeights& weights);

struct PretrainedMultimodal {
  config::ModelArch arch;
  Llama4ForConditionalGeneration model{nullptr};
};

// config::load_model_arch(dir) (must have a vision_config) + the model + load_multimodal_weights.
PretrainedMultimodal load_pretrained_multimodal(const std::string& dir, const ModelOptions& options = {});

}  // namespace l4::model
