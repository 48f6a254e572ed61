#include "model/weights.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "model/placed.h"

namespace l4::model {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

bool is_vision_name(const std::string& canonical) {
  return starts_with(canonical, "vision_model.") || starts_with(canonical, "multi_modal_projector.");
}

// Report lines start with the quoted HF tensor name.
bool names_vision_tensor(const std::string& report_line) {
  return starts_with(report_line, "'vision_model.") || starts_with(report_line, "'multi_modal_projector.");
}

}  // namespace

std::map<std::string, checkpoint::ExpectedTensor> expected_tensors(const config::ModelArch& arch,
                                                                   bool vision) {
  ModelOptions meta;
  meta.device = at::Device(at::kMeta);
  meta.vision = vision;
  Llama4 shapes(arch, meta);
  std::map<std::string, checkpoint::ExpectedTensor> expected;
  for (const auto& item : shapes->named_parameters()) expected[item.key()] = {item.value().sizes().vec(), ""};
  return expected;
}

bool check_weights(const config::ModelArch& arch, bool vision, const checkpoint::ModelWeights& weights) {
  const bool has_vision = vision && arch.vision_config.has_value();
  const bool provides_vision = has_vision && weights.layout() == checkpoint::HfLayout::kConditionalGeneration;
  checkpoint::WeightCheckReport report = checkpoint::compare_weights(weights.source(), weights.layout(),
                                                                     expected_tensors(arch, provides_vision));
  auto& unexpected = report.unexpected;
  const size_t before = unexpected.size();
  if (!has_vision) {
    unexpected.erase(std::remove_if(unexpected.begin(), unexpected.end(), names_vision_tensor),
                     unexpected.end());
  }
  const checkpoint::HfLayout model_layout =
      has_vision ? checkpoint::HfLayout::kConditionalGeneration : checkpoint::HfLayout::kCausalLM;
  L4_CHECK(report.ok(), "weights in {} do not fit the {} model: {}", weights.source().dir(),
           checkpoint::layout_name(model_layout), report.describe());
  if (before != unexpected.size()) {
    L4_LOG_INFO("text model: skipping {} vision/projector tensors of {}", before - unexpected.size(),
                weights.source().dir());
  }
  if (has_vision && !provides_vision) {
    L4_LOG_WARN("{} is a text-only checkpoint: the vision tower and projector keep their initial weights",
                weights.source().dir());
  }
  return provides_vision;
}

bool load_weights(Llama4Impl& model, const checkpoint::ModelWeights& weights) {
  const bool with_vision = check_weights(model.arch(), model.has_vision(), weights);
  copy_weights(model, weights, with_vision);
  return with_vision;
}

void copy_weights(Llama4Impl& model, const checkpoint::ModelWeights& weights, bool with_vision) {
  torch::NoGradGuard no_grad;
  for (const PlacedParam& p : placed_parameters(model)) {
    if (is_vision_name(p.name) && !with_vision) continue;
    const RowRange rows = stored_rows(p);
    const at::Tensor value =
        rows.end < 0 ? weights.load(p.name) : weights.load_rows(p.name, rows.begin, rows.end);
    L4_CHECK(value.sizes() == p.param.sizes(), "weights in {}: '{}' read with shape {}, the model holds {}",
             weights.source().dir(), p.name, c10::str(value.sizes()), c10::str(p.param.sizes()));
    p.param.copy_(value);
  }
}

}  // namespace l4::model
