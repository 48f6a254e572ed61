#include "model/llama4_multimodal.h"

#include <map>

#include "core/error.h"
#include "core/log.h"
#include "model/pretrained.h"

namespace l4::model {
namespace {

const char kLanguagePrefix[] = "language_model.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool is_vision_name(const std::string& canonical) {
  return starts_with(canonical, "vision_model.") || starts_with(canonical, "multi_modal_projector.");
}

const config::VisionConfig& require_vision(const config::ModelArch& arch) {
  L4_CHECK(arch.vision_config.has_value(),
           "{}: the multimodal model (Llama4ForConditionalGeneration) needs a vision_config",
           arch.source.empty() ? std::string("model architecture") : arch.source);
  return *arch.vision_config;
}

at::TensorOptions tensor_options(const ModelOptions& options) {
  return at::TensorOptions().dtype(options.dtype).device(options.device);
}

// Canonical name -> shape of every parameter, from a model on the meta device (no memory).
std::map<std::string, checkpoint::ExpectedTensor> expected_tensors(const config::ModelArch& arch) {
  ModelOptions meta;
  meta.device = at::Device(at::kMeta);
  Llama4ForConditionalGeneration shapes(arch, meta);
  std::map<std::string, checkpoint::ExpectedTensor> expected;
  for (const auto& item : shapes->named_parameters()) {
    expected[multimodal_canonical_name(item.key())] = {item.value().sizes().vec(), ""};
  }
  return expected;
}

void check_multimodal_weights(const config::ModelArch& arch, const checkpoint::ModelWeights& weights) {
  const checkpoint::WeightCheckReport report =
      checkpoint::compare_weights(weights.source(), weights.layout(), expected_tensors(arch));
  L4_CHECK(report.ok(), "weights in {} do not fit the {} model: {}", weights.source().dir(),
           checkpoint::layout_name(checkpoint::HfLayout::kConditionalGeneration), report.describe());
}

// Copies the parameters whose canonical name passes `select` (all names were checked before).
template <class Select>
void copy_weights(Llama4ForConditionalGenerationImpl& model, const checkpoint::ModelWeights& weights,
                  Select select) {
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const std::string canonical = multimodal_canonical_name(item.key());
    if (select(canonical)) item.value().copy_(weights.load(canonical));
  }
}

}  // namespace

std::string multimodal_canonical_name(const std::string& module_name) {
  return starts_with(module_name, kLanguagePrefix) ? module_name.substr(sizeof(kLanguagePrefix) - 1)
                                                   : module_name;
}

Llama4ForConditionalGenerationImpl::Llama4ForConditionalGenerationImpl(const config::ModelArch& arch,
                                                                       const ModelOptions& options)
    : Llama4ForConditionalGenerationImpl(arch, Llama4ForCausalLM(arch.text_config, options), options) {}

Llama4ForConditionalGenerationImpl::Llama4ForConditionalGenerationImpl(const config::ModelArch& arch,
                                                                       Llama4ForCausalLM language_model_in,
                                                                       const ModelOptions& options)
    : arch_(arch) {
  const config::VisionConfig& vision = require_vision(arch);
  language_model = register_module("language_model", std::move(language_model_in));
  vision_model = register_module("vision_model", VisionModel(vision, tensor_options(options)));
  multi_modal_projector = register_module(
      "multi_modal_projector",
      MultiModalProjector(vision, arch.text_config.hidden_size, tensor_options(options)));
}

at::Tensor Llama4ForConditionalGenerationImpl::fused_embeddings(const at::Tensor& input_ids,
                                                                const std::optional<at::Tensor>& pixel_values) {
  at::Tensor embeds = language_model->model->embed_tokens->forward(input_ids);
  if (!pixel_values || !pixel_values->defined()) return embeds;
  const config::VisionConfig& vision = *arch_.vision_config;
  const at::Tensor& pixels = *pixel_values;
  L4_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == vision.image_size &&
               pixels.size(3) == vision.image_size && at::isFloatingType(pixels.scalar_type()),
           "pixel_values must be float [N tiles, 3, {}, {}], got {} {}", vision.image_size, vision.image_size,
           c10::toString(pixels.scalar_type()), c10::str(pixels.sizes()));
  if (pixels.size(0) == 0) {
    // No tiles: there must be no image positions either (fuse_image_features names both counts).
    return fuse_image_features(embeds, input_ids, embeds.new_empty({0, embeds.size(-1)}),
                               arch_.image_token_index);
  }
  const at::Tensor features = encode_images(vision_model, multi_modal_projector,
                                            pixels.to(embeds.device()), freeze_vision_);
  return fuse_image_features(embeds, input_ids, features, arch_.image_token_index);
}

at::Tensor Llama4ForConditionalGenerationImpl::forward(const at::Tensor& input_ids,
                                                       const std::optional<at::Tensor>& pixel_values,
                                                       const std::optional<at::Tensor>& position_ids,
                                                       const std::optional<at::Tensor>& doc_ids) {
  return language_model->forward_embeds(fused_embeddings(input_ids, pixel_values), position_ids, doc_ids);
}

void Llama4ForConditionalGenerationImpl::set_freeze_vision(bool frozen) {
  freeze_vision_ = frozen;
  for (auto& p : vision_model->parameters()) p.set_requires_grad(!frozen);
}

void Llama4ForConditionalGenerationImpl::reset_parameters(const std::optional<uint64_t>& seed) {
  language_model->reset_parameters(seed);
  // Distinct streams so that the tower does not repeat the text model's draws.
  vision_model->reset_parameters(seed ? std::optional<uint64_t>(*seed + 1) : std::nullopt);
  multi_modal_projector->reset_parameters(arch_.text_config.initializer_range,
                                          seed ? std::optional<uint64_t>(*seed + 2) : std::nullopt);
}

void load_multimodal_weights(Llama4ForConditionalGenerationImpl& model, const checkpoint::ModelWeights& weights) {
  if (weights.layout() == checkpoint::HfLayout::kCausalLM) {
    load_text_weights(*model.language_model, weights);
    L4_LOG_WARN("{} is a text-only checkpoint: the vision tower and projector keep their current weights",
                weights.source().dir());
    return;
  }
  check_multimodal_weights(model.arch(), weights);
  copy_weights(model, weights, [](const std::string&) { return true; });
}

void load_vision_weights(Llama4ForConditionalGenerationImpl& model, const checkpoint::ModelWeights& weights) {
  L4_CHECK(weights.layout() == checkpoint::HfLayout::kConditionalGeneration,
           "{}: a text-only ({}) checkpoint has no vision tower", weights.source().dir(),
           checkpoint::layout_name(weights.layout()));
  check_multimodal_weights(model.arch(), weights);
  copy_weights(model, weights, is_vision_name);
}

PretrainedMultimodal load_pretrained_multimodal(const std::string& dir, const ModelOptions& options) {
  PretrainedMultimodal out;
  out.arch = config::load_model_arch(dir);
  require_vision(out.arch);
  const checkpoint::ModelWeights weights = checkpoint::ModelWeights::open_dir(dir);
  if (weights.layout() == checkpoint::HfLayout::kCausalLM) {
    check_text_weights(out.arch.text_config, weights);  // before allocating anything
  } else {
    check_multimodal_weights(out.arch, weights);
  }
  out.model = Llama4ForConditionalGeneration(out.arch, options);
  if (weights.layout() == checkpoint::HfLayout::kCausalLM) out.model->reset_parameters(0);
  load_multimodal_weights(*out.model, weights);
  return out;
}

}  // namespace l4::model
