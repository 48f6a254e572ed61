#include "train/multimodal_setup.h"

#include "checkpoint/model_weights.h"
#include "core/error.h"
#include "core/log.h"
#include "model/llama4_multimodal.h"
#include "train/model_setup.h"
#include "vision/image_preprocess.h"

namespace l4::train {

void attach_vision(ModelSetup& setup, const config::Recipe& recipe, const model::ModelOptions& options) {
  if (!recipe.arch.vision_config) return;
  L4_ASSERT(!setup.model.is_empty(), "attach_vision needs the text model first");
  setup.multimodal = model::Llama4ForConditionalGeneration(recipe.arch, setup.model, options);
  // Same seed as the text model; reset_parameters offsets the tower's and projector's streams.
  const auto seed = static_cast<uint64_t>(recipe.train.seed);
  setup.multimodal->vision_model->reset_parameters(seed + 1);
  setup.multimodal->multi_modal_projector->reset_parameters(recipe.arch.text_config.initializer_range, seed + 2);
  const std::string weights_dir = !recipe.model.hf_dir.empty() ? recipe.model.hf_dir : recipe.model.init;
  if (!weights_dir.empty()) {
    const checkpoint::ModelWeights weights = checkpoint::ModelWeights::open_dir(weights_dir);
    if (weights.layout() == checkpoint::HfLayout::kConditionalGeneration) {
      model::load_vision_weights(*setup.multimodal, weights);
    } else {
      L4_LOG_WARN("{} is a text-only checkpoint: the vision tower and projector start from a seeded init",
                  weights_dir);
    }
  }
  setup.multimodal->set_freeze_vision(recipe.model.freeze_vision);
  int64_t count = 0;
  for (const auto& item : setup.multimodal->named_parameters()) {
    const std::string name = model::multimodal_canonical_name(item.key());
    if (name == item.key() && item.value().requires_grad()) {  // not a text parameter (already listed)
      setup.trainable.push_back({name, item.value()});
      setup.sync.push_back({name, item.value(), parallel::ParamKind::kReplicated});
      count += item.value().numel();
    }
  }
  L4_LOG_INFO("vision tower {}; {} vision/projector parameters train",
              recipe.model.freeze_vision ? "frozen" : "trained", count);
}

at::Tensor ModelSetup::forward(const data::Batch& batch) {
  const bool has_tiles = batch.pixel_tiles.defined() && batch.pixel_tiles.size(0) > 0;
  if (!multimodal.is_empty()) {
    multimodal->vision_model->train(model->is_training());  // the trainer switches the text model's mode
    std::optional<at::Tensor> pixel_values;
    // HF normalises in bf16 (the values the model was trained on); the tower casts to its own dtype.
    if (has_tiles) pixel_values = vision::normalize_tiles(batch.pixel_tiles);
    return multimodal->forward(batch.input_ids, pixel_values, batch.position_ids, batch.doc_ids);
  }
  L4_CHECK(!has_tiles,
           "the batch has {} image tiles but the model has no vision_config (use an architecture with a "
           "vision tower, or a text-only dataset)",
           batch.pixel_tiles.size(0));
  return model->forward(batch.input_ids, batch.position_ids, batch.doc_ids);
}

}  // namespace l4::train
