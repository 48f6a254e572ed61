// HF Llama4MultiModalProjector ("multi_modal_projector.linear_1", no bias) and the early-fusion seam:
// encode_images() turns pixel_values into one text-width embedding per <|patch|> token, and
// fuse_image_features() writes them, in order, over the <|patch|> positions of the text embeddings.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>

#include "config/model_arch.h"
#include "model/vision_encoder.h"

namespace l4::model {

class MultiModalProjectorImpl : public torch::nn::Module {
 public:
  // vision_output_dim -> text hidden_size. Parameters are allocated uninitialised.
  MultiModalProjectorImpl(const config::VisionConfig& vision, int64_t text_hidden_size,
                          const at::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& features) const;
  void reset_parameters(double initializer_range, const std::optional<uint64_t>& seed = std::nullopt);
  VisionLinear linear_1{nullptr};
};
TORCH_MODULE(MultiModalProjector);

// pixel_values [N tiles, 3, S, S] -> [N * tokens_per_tile, text_hidden] (HF: vision_model, flatten,
// multi_modal_projector). With `frozen`, the tower runs without autograd and the result has no grad.
at::Tensor encode_images(VisionModel& vision_model, MultiModalProjector& projector,
                         const at::Tensor& pixel_values, bool frozen = false);

// inputs_embeds [B, T, D] with features [K, D] scattered, in row-major order, into the positions where
// input_ids [B, T] == image_token_index (HF masked_scatter; differentiable in both). K must equal the
// number of such positions (l4::Error naming both counts).
at::Tensor fuse_image_features(const at::Tensor& inputs_embeds, const at::Tensor& input_ids,
                               const at::Tensor& image_features, int64_t image_token_index);

}  // namespace l4::model
