#include "model/vision_projector.h"

#include "core/error.h"

namespace l4::model {

MultiModalProjectorImpl::MultiModalProjectorImpl(const config::VisionConfig& vision, int64_t text_hidden_size,
                                                 const at::TensorOptions& options) {
  L4_CHECK(vision.projector_output_dim == vision.vision_output_dim,
           "vision_config: projector_output_dim ({}) must equal vision_output_dim ({}), the projector's "
           "input width",
           vision.projector_output_dim, vision.vision_output_dim);
  L4_CHECK(
      !vision.multi_modal_projector_bias,
      "vision_config.multi_modal_projector_bias = true is not supported (Llama 4's projector has no bias)");
  linear_1 =
      register_module("linear_1", VisionLinear(vision.vision_output_dim, text_hidden_size, false, options));
}

at::Tensor MultiModalProjectorImpl::forward(const at::Tensor& features) const {
  return linear_1->forward(features);
}

void MultiModalProjectorImpl::reset_parameters(double initializer_range,
                                               const std::optional<uint64_t>& seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = vision_init_generator(seed);
  at::Tensor& w = linear_1->weight;
  w.copy_(at::normal(0.0, initializer_range, w.sizes(), gen, at::TensorOptions().dtype(at::kFloat)));
}

at::Tensor encode_images(VisionModel& vision_model, MultiModalProjector& projector,
                         const at::Tensor& pixel_values, bool frozen) {
  at::Tensor features;
  if (frozen) {
    at::NoGradGuard no_grad;
    features = vision_model->forward(pixel_values);
  } else {
    features = vision_model->forward(pixel_values);
  }
  return projector->forward(features.reshape({-1, features.size(-1)}));
}

at::Tensor fuse_image_features(const at::Tensor& inputs_embeds, const at::Tensor& input_ids,
                               const at::Tensor& image_features, int64_t image_token_index) {
  L4_CHECK(inputs_embeds.dim() == 3 && input_ids.dim() == 2 && inputs_embeds.size(0) == input_ids.size(0) &&
               inputs_embeds.size(1) == input_ids.size(1),
           "early fusion: inputs_embeds {} does not match input_ids {}", c10::str(inputs_embeds.sizes()),
           c10::str(input_ids.sizes()));
  L4_CHECK(image_features.dim() == 2 && image_features.size(1) == inputs_embeds.size(2),
           "early fusion: image features {} must be [count, {}]", c10::str(image_features.sizes()),
           inputs_embeds.size(2));
  const at::Tensor mask = input_ids.eq(image_token_index);
  const int64_t slots = mask.sum().item<int64_t>();
  L4_CHECK(slots == image_features.size(0),
           "early fusion: the tokens have {} image positions (id {}) but the images give {} features", slots,
           image_token_index, image_features.size(0));
  return inputs_embeds.masked_scatter(mask.unsqueeze(-1).to(inputs_embeds.device()),
                                      image_features.to(inputs_embeds.options()));
}

}  // namespace l4::model
