#include "model/llama4.h"

#include "core/error.h"
#include "model/expert_parallel.h"
#include "model/placed.h"
#include "parallel/rank_rng.h"

namespace l4::model {

Llama4Impl::Llama4Impl(const config::ModelArch& arch, const ModelOptions& options) : arch_(arch) {
  config::TextConfig& text = arch_.text_config;
  text.resolve();
  L4_CHECK(!text.tie_word_embeddings,
           "model config: tie_word_embeddings=true is not supported (Llama 4 has an untied lm_head)");
  shard_ = {options.experts.begin,
            options.experts.count > 0 ? options.experts.count : text.num_local_experts};
  const auto tensor_options = at::TensorOptions().dtype(options.dtype).device(options.device);
  model = register_module("model", TextModel(text, tensor_options, options.experts));
  lm_head = register_module("lm_head", Linear(text.hidden_size, text.vocab_size, tensor_options));
  if (options.vision && arch_.vision_config) {
    const config::VisionConfig& vision = *arch_.vision_config;
    vision_model = register_module("vision_model", VisionModel(vision, tensor_options));
    multi_modal_projector = register_module("multi_modal_projector",
                                            MultiModalProjector(vision, text.hidden_size, tensor_options));
  }
}

at::Tensor Llama4Impl::embeddings(const at::Tensor& input_ids, const at::Tensor& pixel_values) {
  at::Tensor embeds = model->embed(input_ids);
  if (!pixel_values.defined()) return embeds;
  L4_CHECK(has_vision(),
           "the model has no vision tower (its architecture has no vision_config), but the input "
           "has {} image tiles",
           pixel_values.dim() > 0 ? pixel_values.size(0) : 0);
  const config::VisionConfig& vision = *arch_.vision_config;
  L4_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == 3 &&
               pixel_values.size(2) == vision.image_size && pixel_values.size(3) == vision.image_size &&
               at::isFloatingType(pixel_values.scalar_type()),
           "pixel_values must be float [N tiles, 3, {}, {}], got {} {}", vision.image_size, vision.image_size,
           c10::toString(pixel_values.scalar_type()), c10::str(pixel_values.sizes()));
  if (pixel_values.size(0) == 0) {
    // No tiles: there must be no image positions either (fuse_image_features names both counts).
    return fuse_image_features(embeds, input_ids, embeds.new_empty({0, embeds.size(-1)}),
                               arch_.image_token_index);
  }
  const at::Tensor features =
      encode_images(vision_model, multi_modal_projector, pixel_values.to(embeds.device()), freeze_vision_);
  return fuse_image_features(embeds, input_ids, features, arch_.image_token_index);
}

at::Tensor Llama4Impl::hidden_states(const ModelInput& input) {
  if (has_vision()) vision_model->train(is_training());  // the tower follows the root's mode
  auto optional = [](const at::Tensor& t) {
    return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
  };
  return model->forward_embeds(embeddings(input.input_ids, input.pixel_values), optional(input.position_ids),
                               optional(input.doc_ids), input.cache);
}

at::Tensor Llama4Impl::forward(const ModelInput& input) {
  return lm_head->forward(hidden_states(input));
}

at::Tensor Llama4Impl::forward(const at::Tensor& input_ids, const std::optional<at::Tensor>& position_ids,
                               const std::optional<at::Tensor>& doc_ids) {
  ModelInput input;
  input.input_ids = input_ids;
  if (position_ids) input.position_ids = *position_ids;
  if (doc_ids) input.doc_ids = *doc_ids;
  return forward(input);
}

void Llama4Impl::set_freeze_vision(bool frozen) {
  freeze_vision_ = frozen;
  if (!has_vision()) return;
  for (auto& p : vision_model->parameters()) p.set_requires_grad(!frozen);
}

namespace {

// nn.Embedding(padding_idx=pad_token_id) starts with a zero row, as in HF.
void zero_padding_row(TextModelImpl& text) {
  const auto pad = text.config().pad_token_id;
  torch::NoGradGuard no_grad;
  if (pad && *pad >= 0 && *pad < text.config().vocab_size) text.embed_tokens->weight[*pad].zero_();
}

}  // namespace

void Llama4Impl::reset_parameters(const std::optional<uint64_t>& seed) {
  if (seed) torch::manual_seed(*seed);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      at::Tensor& p = item.value();
      if (p.dim() == 1) {  // the RMSNorm weights are the only vectors
        p.fill_(1.0);
      } else {
        p.normal_(0.0, text_config().initializer_range);
      }
    }
    lm_head->weight.normal_(0.0, text_config().initializer_range);
  }
  zero_padding_row(*model);
  if (!has_vision()) return;
  // Distinct streams so that the tower does not repeat the text model's draws.
  vision_model->reset_parameters(seed ? std::optional<uint64_t>(*seed + 1) : std::nullopt);
  multi_modal_projector->reset_parameters(text_config().initializer_range,
                                          seed ? std::optional<uint64_t>(*seed + 2) : std::nullopt);
}

void Llama4Impl::init_parameters(uint64_t seed) {
  const parallel::InitFn normal = parallel::normal_init(text_config().initializer_range);
  const parallel::InitFn ones = [](at::Tensor& out, at::Generator&) { out.fill_(1.0); };
  for (PlacedParam& p : placed_parameters(*this)) {
    if (p.name.rfind("model.", 0) != 0 && p.name.rfind("lm_head.", 0) != 0) continue;  // the text model's
    const parallel::InitFn& init =
        p.param.dim() == 1 ? ones : normal;  // RMSNorm weights are the only vectors
    if (p.placement.is_sharded()) {
      parallel::init_experts(p.param, p.placement.offset, seed, p.name, init);
    } else {
      parallel::init_replicated(p.param, seed, p.name, init);
    }
  }
  zero_padding_row(*model);
  if (!has_vision()) return;
  vision_model->reset_parameters(seed + 1);
  multi_modal_projector->reset_parameters(text_config().initializer_range, seed + 2);
}

void Llama4Impl::set_router_loss(const RouterLossOptions& options) {
  for (auto& layer : model->decoder_layers) {
    if (layer->moe) layer->moe->loss_options = options;
  }
}

void Llama4Impl::set_expert_runner(const ExpertRunner& runner) {
  for (auto& layer : model->decoder_layers) {
    if (layer->moe) layer->moe->expert_runner = runner;
  }
}

at::Tensor Llama4Impl::router_loss() const {
  at::Tensor total;
  for (const auto& layer : model->decoder_layers) {
    if (!layer->moe || !layer->moe->last_router_loss.defined()) continue;
    total = total.defined() ? total + layer->moe->last_router_loss : layer->moe->last_router_loss;
  }
  return total;
}

std::vector<at::Tensor> Llama4Impl::expert_token_counts() const {
  std::vector<at::Tensor> counts;
  for (const auto& layer : model->decoder_layers) {
    if (layer->moe) counts.push_back(layer->moe->last_expert_counts);
  }
  return counts;
}

}  // namespace l4::model
