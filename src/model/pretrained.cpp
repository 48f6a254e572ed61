#include "model/pretrained.h"

#include <map>

#include "core/error.h"
#include "core/log.h"

namespace l4::model {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Report lines start with the quoted HF tensor name.
bool is_multimodal_only(const std::string& report_line) {
  return starts_with(report_line, "'vision_model.") || starts_with(report_line, "'multi_modal_projector.");
}

// Shapes by name, from a model on the meta device (no memory).
std::map<std::string, checkpoint::ExpectedTensor> expected_text_tensors(const config::TextConfig& config) {
  ModelOptions meta;
  meta.device = at::Device(at::kMeta);
  Llama4ForCausalLM shapes(config, meta);
  std::map<std::string, checkpoint::ExpectedTensor> expected;
  for (const auto& item : shapes->named_parameters()) expected[item.key()] = {item.value().sizes().vec(), ""};
  return expected;
}

}  // namespace

void check_text_weights(const config::TextConfig& config, const checkpoint::ModelWeights& weights) {
  checkpoint::WeightCheckReport report =
      checkpoint::compare_weights(weights.source(), weights.layout(), expected_text_tensors(config));
  auto& unexpected = report.unexpected;
  const size_t before = unexpected.size();
  unexpected.erase(std::remove_if(unexpected.begin(), unexpected.end(), is_multimodal_only),
                   unexpected.end());
  L4_CHECK(report.ok(), "weights in {} do not fit the {} model: {}", weights.source().dir(),
           checkpoint::layout_name(checkpoint::HfLayout::kCausalLM), report.describe());
  if (before != unexpected.size()) {
    L4_LOG_INFO("text model: skipping {} vision/projector tensors of {}", before - unexpected.size(),
                weights.source().dir());
  }
}

void load_text_weights(Llama4ForCausalLMImpl& model, const checkpoint::ModelWeights& weights) {
  check_text_weights(model.config(), weights);  // full-size shapes, as stored
  const ExpertShard& shard = model.expert_shard();
  const bool sharded = shard.count != model.config().num_local_experts;
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    at::Tensor& param = item.value();
    // Under expert parallelism only this instance's expert rows are read from the file.
    const bool expert_rows = sharded && item.key().find(".experts.") != std::string::npos;
    const at::Tensor value = expert_rows
                                 ? weights.load_rows(item.key(), shard.begin, shard.begin + shard.count)
                                 : weights.load(item.key());
    L4_CHECK(value.sizes() == param.sizes(), "weights in {}: '{}' read with shape {}, the model holds {}",
             weights.source().dir(), item.key(), c10::str(value.sizes()), c10::str(param.sizes()));
    param.copy_(value);
  }
}

PretrainedText load_pretrained_text(const std::string& dir, const ModelOptions& options) {
  PretrainedText out;
  out.arch = config::load_model_arch(dir);
  const checkpoint::ModelWeights weights = checkpoint::ModelWeights::open_dir(dir);
  check_text_weights(out.arch.text_config, weights);  // before allocating anything
  out.model = Llama4ForCausalLM(out.arch.text_config, options);
  torch::NoGradGuard no_grad;
  for (auto& item : out.model->named_parameters()) item.value().copy_(weights.load(item.key()));
  return out;
}

}  // namespace l4::model
