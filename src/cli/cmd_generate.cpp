// llama4 generate: chat generation with a KV cache, optionally with images (early fusion at prefill) and a
// PEFT LoRA adapter. The model is an HF directory (--model) or what a recipe trains (--config): its
// architecture and initial weights, the vision tower as training builds it, and the checkpoint the recipe
// would resume from, the way `llama4 eval` sees it.
#include <iostream>
#include <string>
#include <vector>

#include "checkpoint/training_checkpoint.h"
#include "cli/commands.h"
#include "config/model_arch.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/log.h"
#include "lora/image_prompt.h"
#include "lora/kv_decoder.h"
#include "lora/peft_adapter.h"
#include "model/llama4_multimodal.h"
#include "model/pretrained.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "tokenizer/tokenizer.h"
#include "train/model_setup.h"
#include "train/resume_source.h"

namespace l4::cli {
namespace {

struct GenerationModel {
  config::ModelArch arch;
  model::Llama4ForCausalLM text{nullptr};
  model::Llama4ForConditionalGeneration multimodal{nullptr};  // set when images are given
  std::string tokenizer_path;
};

GenerationModel from_model_dir(const ParsedArgs& args, bool images) {
  const std::string dir = args.require("model", "generate");
  GenerationModel out;
  out.tokenizer_path = args.get("tokenizer", dir);
  if (images) {
    out.arch = config::load_model_arch(dir);
    L4_CHECK(out.arch.vision_config.has_value(),
             "generate --image: {} is a text-only model (its config.json has no vision_config); images need "
             "a multimodal (Llama4ForConditionalGeneration) model directory",
             dir);
    model::PretrainedMultimodal loaded = model::load_pretrained_multimodal(dir);
    out.multimodal = loaded.model;
    out.text = loaded.model->language_model;
  } else {
    model::PretrainedText loaded = model::load_pretrained_text(dir);
    out.arch = loaded.arch;
    out.text = loaded.model;
  }
  if (args.has("adapter")) lora::load_peft_adapter(*out.text, args.get("adapter"));
  return out;
}

// The recipe's model on one process, with the trained tensors of the checkpoint it resumes from.
GenerationModel from_recipe(const ParsedArgs& args, bool images) {
  std::vector<std::string> overrides = args.positionals();
  if (args.has("checkpoint")) overrides.push_back("checkpoint.resume=" + args.get("checkpoint"));
  overrides.push_back("parallel.expert_parallel=1");  // every expert on this process
  const config::Recipe recipe = config::load_recipe(args.require("config", "generate"), overrides);
  L4_CHECK(!images || recipe.arch.vision_config.has_value(),
           "generate --image: the architecture of {} has no vision_config (no vision tower)", recipe.source);
  parallel::SelfCommunicator self;
  const parallel::ProcessGrid grid(self, 1, recipe.arch.text_config.num_local_experts);
  train::ModelSetup setup = train::build_model(recipe, grid);
  const std::string path = train::resume_path(recipe.checkpoint);
  if (!path.empty()) {
    const checkpoint::Checkpoint ckpt = train::open_checkpoint_for(path, recipe.arch);
    train::load_trainable(ckpt, setup);
    L4_LOG_INFO("generate: {} trained tensors from {} (step {})", setup.trainable.size(), ckpt.path,
                ckpt.step);
  } else {
    L4_LOG_INFO("generate: initial weights of {} (no checkpoint)", recipe.source);
  }
  GenerationModel out;
  out.arch = recipe.arch;
  out.text = setup.model;
  if (images) out.multimodal = setup.multimodal;
  out.tokenizer_path = args.get("tokenizer", recipe.tokenizer.path);
  return out;
}

int run_generate(const ParsedArgs& args) {
  const std::string prompt = args.require("prompt", "generate");
  const std::vector<std::string> image_paths = args.all("image");
  L4_CHECK(args.has("model") != args.has("config"), "generate: give either --model DIR or --config RECIPE");
  L4_CHECK(args.has("config") || (!args.has("checkpoint") && args.positionals().empty()),
           "generate: --checkpoint and key=value overrides go with --config");
  L4_CHECK(!args.has("config") || !args.has("adapter"),
           "generate: --adapter goes with --model (a recipe's LoRA tensors come from its checkpoint)");
  lora::SamplingOptions options;
  options.max_tokens = args.get_int("max-tokens", 128);
  options.temperature = args.get_double("temperature", 0.0);
  options.top_p = args.get_double("top-p", 1.0);
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  L4_CHECK(options.max_tokens >= 1, "--max-tokens must be >= 1 (got {})", options.max_tokens);

  const bool images = !image_paths.empty();
  GenerationModel gen = args.has("model") ? from_model_dir(args, images) : from_recipe(args, images);
  const auto tok = tokenizer::Tokenizer::load(gen.tokenizer_path);
  const config::VisionConfig no_vision;
  const lora::ImagePrompt input = lora::build_image_prompt(
      *tok, prompt, image_paths, gen.arch.vision_config ? *gen.arch.vision_config : no_vision);
  for (int32_t id : {tok->eot_id(), tok->eos_id()}) {
    if (id >= 0) options.stop_ids.push_back(id);
  }
  for (int64_t id : gen.arch.text_config.eos_token_id) options.stop_ids.push_back(id);

  std::vector<int64_t> out;
  if (images) {
    gen.multimodal->eval();
    L4_LOG_INFO("generate: {} image(s), {} tiles, prompt of {} tokens", image_paths.size(), input.num_tiles,
                input.ids.size());
    out = lora::generate(*gen.multimodal, input.ids, input.pixel_values, options);
  } else {
    gen.text->eval();
    out = lora::generate(*gen.text, input.ids, options);
  }
  if (args.has("ids")) {
    for (size_t i = 0; i < out.size(); ++i) std::cout << (i ? " " : "") << out[i];
    std::cout << std::endl;
  } else {
    std::cout << tok->decode(std::vector<int32_t>(out.begin(), out.end())) << std::endl;
  }
  return 0;
}

}  // namespace

Command make_generate_command() {
  return {{"generate",
           "chat generation with a KV cache (text, or text with images)",
           "(--model DIR [--adapter DIR] | --config RECIPE.yaml [--checkpoint DIR] [key.path=value ...]) "
           "--prompt TEXT [--image FILE ...] [--max-tokens N] [--temperature T] [--top-p P] [--seed S] "
           "[--ids]",
           {{"model", "DIR", "HF model directory (multimodal, i.e. with a vision_config, for --image)"},
            {"adapter", "DIR", "PEFT adapter directory (with --model)"},
            {"config", "FILE",
             "recipe YAML instead of --model: its model as training builds it (vision tower included), with "
             "the trained tensors of the checkpoint it would resume from"},
            {"checkpoint", "DIR", "with --config: step_N checkpoint to use (default: checkpoint.resume)"},
            {"tokenizer", "PATH",
             "tokenizer file or directory (default: the model directory / the recipe's)"},
            {"prompt", "TEXT",
             "user message (chat template applied); the images go before it unless it holds <|image|> "
             "placeholders, one per image"},
            {"image", "FILE", "PNG or JPEG image for the prompt (repeatable, in order)", true},
            {"max-tokens", "N", "tokens to generate (default 128)"},
            {"temperature", "T", "0 = greedy (default)"},
            {"top-p", "P", "nucleus sampling (default 1)"},
            {"seed", "S", "sampling seed (default 0)"},
            {"ids", "", "print the generated token ids instead of the text"}},
           /*accepts_overrides=*/true},
          run_generate};
}

}  // namespace l4::cli
