// llama4 forward: logits for input_ids (and pixel_values) from a safetensors file, for parity checks by any
// tool. IN: input_ids int64 [B, T], optional position_ids / doc_ids int64 [B, T] (packed rows), optional
// pixel_values float [N tiles, 3, S, S] (normalised, as HF's processor gives them; multimodal model
// directories only). OUT: logits float32 [B, T, V].
#include "checkpoint/safetensors.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "config/model_arch.h"
#include "model/llama4_multimodal.h"
#include "model/pretrained.h"

namespace l4::cli {
namespace {

at::Tensor load_ids(const checkpoint::SafetensorsFile& file, const std::string& name) {
  const at::Tensor t = file.load(name);
  L4_CHECK(t.scalar_type() == at::kLong && t.dim() == 2, "{}: tensor '{}' must be int64 [B, T], got {} {}",
           file.path(), name, c10::toString(t.scalar_type()), c10::str(t.sizes()));
  return t;
}

std::optional<at::Tensor> load_optional_ids(const checkpoint::SafetensorsFile& file, const std::string& name,
                                            const at::Tensor& input_ids) {
  if (!file.contains(name)) return std::nullopt;
  const at::Tensor t = load_ids(file, name);
  L4_CHECK(t.sizes() == input_ids.sizes(), "{}: tensor '{}' has shape {}, input_ids has {}", file.path(),
           name,
           c10::str(t.sizes()), c10::str(input_ids.sizes()));
  return t;
}

int run_forward(const ParsedArgs& args) {
  const std::string model_dir = args.require("model", "forward");
  const std::string input_path = args.require("input", "forward");
  const std::string output_path = args.require("output", "forward");
  const std::string device_name = args.get("device", "cpu");
  L4_CHECK(device_name == "cpu" || device_name == "cuda", "--device must be 'cpu' or 'cuda', got '{}'",
           device_name);
  L4_CHECK(device_name == "cpu" || torch::cuda::is_available(), "--device cuda: no CUDA device is available");
  const at::Device device = device_name == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);

  const auto input = checkpoint::SafetensorsFile::open(input_path);
  L4_CHECK(input->contains("input_ids"), "{}: no tensor 'input_ids' (int64 [B, T])", input_path);
  const at::Tensor input_ids = load_ids(*input, "input_ids");
  const auto position_ids = load_optional_ids(*input, "position_ids", input_ids);
  const auto doc_ids = load_optional_ids(*input, "doc_ids", input_ids);

  std::optional<at::Tensor> pixel_values;
  if (input->contains("pixel_values")) {
    pixel_values = input->load("pixel_values");
    L4_CHECK(at::isFloatingType(pixel_values->scalar_type()) && pixel_values->dim() == 4 &&
                 pixel_values->size(1) == 3,
             "{}: tensor 'pixel_values' must be float [N, 3, S, S], got {} {}", input_path,
             c10::toString(pixel_values->scalar_type()), c10::str(pixel_values->sizes()));
  }

  model::ModelOptions options;
  options.device = device;
  torch::NoGradGuard no_grad;
  auto to_device = [&](const std::optional<at::Tensor>& t) -> std::optional<at::Tensor> {
    return t ? std::optional<at::Tensor>(t->to(device)) : std::nullopt;
  };
  at::Tensor logits;
  if (pixel_values) {
    L4_CHECK(config::load_model_arch(model_dir).vision_config.has_value(),
             "{}: has pixel_values but {} is a text-only model (no vision_config)", input_path, model_dir);
    model::PretrainedMultimodal loaded = model::load_pretrained_multimodal(model_dir, options);
    loaded.model->eval();
    const int64_t size = loaded.arch.vision_config->image_size;
    L4_CHECK(pixel_values->size(2) == size && pixel_values->size(3) == size,
             "{}: pixel_values {} do not match the model's image_size {}", input_path,
             c10::str(pixel_values->sizes()), size);
    logits = loaded.model->forward(input_ids.to(device), to_device(pixel_values), to_device(position_ids),
                                   to_device(doc_ids));
  } else {
    // Text only (also for multimodal directories: the vision tower is not needed).
    model::PretrainedText loaded = model::load_pretrained_text(model_dir, options);
    loaded.model->eval();
    logits = loaded.model->forward(input_ids.to(device), to_device(position_ids), to_device(doc_ids));
  }
  checkpoint::save_safetensors(output_path, {{"logits", logits.to(at::kFloat).to(at::kCPU).contiguous()}});
  L4_LOG_INFO("wrote logits {} to {}", c10::str(logits.sizes()), output_path);
  return 0;
}

}  // namespace

Command make_forward_command() {
  return {{"forward",
           "logits for input_ids (and pixel_values) from a safetensors file",
           "--model DIR --input IN.safetensors --output OUT.safetensors [--device cpu|cuda]",
           {{"model", "DIR", "HF model directory (config.json + safetensors, text-only or multimodal)"},
            {"input", "FILE",
             "safetensors: input_ids int64 [B,T] (optional position_ids, doc_ids; pixel_values float [N,3,S,S] "
             "for multimodal models)"},
            {"output", "FILE", "safetensors to write logits float32 [B,T,V]"},
            {"device", "NAME", "cpu (default) or cuda"}},
           /*accepts_overrides=*/false},
          run_forward};
}

}  // namespace l4::cli
