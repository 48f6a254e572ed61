// llama4 forward: logits for input_ids (and pixel_values) from a safetensors file, for parity checks by any
// tool, of an HF model directory (--model) or of a recipe's run (--config, the trained tensors of the
// checkpoint it would resume from, as generate --config sees them). IN: input_ids int64 [B, T], optional
// position_ids / doc_ids int64 [B, T] (packed rows), optional pixel_values float [N tiles, 3, S, S]
// (normalised, as HF's processor gives them; multimodal models only). OUT: logits float32 [B, T, V].
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "cli/commands.h"
#include "config/model_arch.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/log.h"
#include "restore/restore.h"

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
           name, c10::str(t.sizes()), c10::str(input_ids.sizes()));
  return t;
}

int run_forward(const ParsedArgs& args) {
  L4_CHECK(args.has("model") != args.has("config"), "forward: give either --model DIR or --config RECIPE");
  L4_CHECK(args.has("config") || !args.has("checkpoint"), "forward: --checkpoint goes with --config");
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

  std::optional<config::Recipe> recipe;
  if (args.has("config")) {
    std::vector<std::string> overrides;
    if (args.has("checkpoint")) overrides.push_back("checkpoint.resume=" + args.get("checkpoint"));
    recipe = config::load_recipe(args.get("config"), overrides);
  }
  const std::string source = recipe ? recipe->source : args.get("model");
  if (pixel_values) {
    const config::ModelArch arch = recipe ? recipe->arch : config::load_model_arch(source);
    L4_CHECK(arch.vision_config.has_value(),
             "{}: has pixel_values but {} is a text-only model (no vision_config)", input_path, source);
    const int64_t size = arch.vision_config->image_size;
    L4_CHECK(pixel_values->size(2) == size && pixel_values->size(3) == size,
             "{}: pixel_values {} do not match the model's image_size {}", input_path,
             c10::str(pixel_values->sizes()), size);
  }
  restore::RestoredModel loaded =
      recipe ? restore::from_recipe(*recipe, restore::resume_path(recipe->checkpoint))
             : restore::from_hf_dir(source, "", device, pixel_values.has_value());
  loaded.model->to(device);
  loaded.model->eval();
  torch::NoGradGuard no_grad;
  model::ModelInput in;
  in.input_ids = input_ids.to(device);
  if (pixel_values) in.pixel_values = pixel_values->to(device);
  if (position_ids) in.position_ids = position_ids->to(device);
  if (doc_ids) in.doc_ids = doc_ids->to(device);
  const at::Tensor logits = loaded.model->forward(in);
  checkpoint::save_safetensors(output_path, {{"logits", logits.to(at::kFloat).to(at::kCPU).contiguous()}});
  L4_LOG_INFO("wrote logits {} to {}", c10::str(logits.sizes()), output_path);
  return 0;
}

}  // namespace

Command make_forward_command() {
  return {
      {"forward",
       "logits for input_ids (and pixel_values) from a safetensors file",
       "(--model DIR | --config RECIPE.yaml [--checkpoint DIR]) --input IN.safetensors --output "
       "OUT.safetensors "
       "[--device cpu|cuda]",
       {{"model", "DIR", "HF model directory (config.json + safetensors, text-only or multimodal)"},
        {"config", "FILE",
         "recipe YAML instead of --model: its model with the trained tensors of the checkpoint "
         "it would resume from"},
        {"checkpoint", "DIR", "with --config: step_N checkpoint to use (default: checkpoint.resume)"},
        {"input", "FILE",
         "safetensors: input_ids int64 [B,T] (optional position_ids, doc_ids; pixel_values float [N,3,S,S] "
         "for multimodal models)"},
        {"output", "FILE", "safetensors to write logits float32 [B,T,V]"},
        {"device", "NAME", "cpu (default) or cuda"}},
       /*accepts_overrides=*/false},
      run_forward};
}

}  // namespace l4::cli
