// llama4 forward: logits for input_ids (and later pixel_values) from a safetensors file, for parity checks
// by any tool. IN: input_ids int64 [B, T], optional position_ids / doc_ids int64 [B, T] (packed rows).
// OUT: logits float32 [B, T, V].
#include "checkpoint/safetensors.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
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
  L4_CHECK(!input->contains("pixel_values"), "{}: pixel_values are not supported yet (text model only)",
           input_path);
  const at::Tensor input_ids = load_ids(*input, "input_ids");
  const auto position_ids = load_optional_ids(*input, "position_ids", input_ids);
  const auto doc_ids = load_optional_ids(*input, "doc_ids", input_ids);

  model::ModelOptions options;
  options.device = device;
  model::PretrainedText loaded = model::load_pretrained_text(model_dir, options);
  loaded.model->eval();
  torch::NoGradGuard no_grad;
  auto to_device = [&](const std::optional<at::Tensor>& t) -> std::optional<at::Tensor> {
    return t ? std::optional<at::Tensor>(t->to(device)) : std::nullopt;
  };
  const at::Tensor logits =
      loaded.model->forward(input_ids.to(device), to_device(position_ids), to_device(doc_ids));
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
            {"input", "FILE", "safetensors: input_ids int64 [B,T] (optional position_ids, doc_ids)"},
            {"output", "FILE", "safetensors to write logits float32 [B,T,V]"},
            {"device", "NAME", "cpu (default) or cuda"}},
           /*accepts_overrides=*/false},
          run_forward};
}

}  // namespace l4::cli
