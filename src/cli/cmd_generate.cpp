// llama4 generate: chat generation with a KV cache, optionally with images (early fusion at prefill) and a
// PEFT LoRA adapter. The model is an HF directory (--model) or what a recipe trains (--config): its
// architecture and initial weights, the vision tower as training builds it, and the checkpoint the recipe
// would resume from, the way `llama4 eval` sees it.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "config/model_arch.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/log.h"
#include "generate/generator.h"
#include "generate/image_prompt.h"
#include "restore/restore.h"
#include "tokenizer/tokenizer.h"

namespace l4::cli {
namespace {

restore::RestoredModel from_model_dir(const ParsedArgs& args, bool images) {
  const std::string dir = args.require("model", "generate");
  L4_CHECK(!images || config::load_model_arch(dir).vision_config.has_value(),
           "generate --image: {} is a text-only model (its config.json has no vision_config); images need "
           "a multimodal (Llama4ForConditionalGeneration) model directory",
           dir);
  restore::RestoredModel out = restore::from_hf_dir(dir, args.get("adapter", ""), at::kCPU, images);
  out.tokenizer = args.get("tokenizer", dir);
  return out;
}

// The recipe's model on one process, with the trained tensors of the checkpoint it resumes from.
restore::RestoredModel from_recipe(const ParsedArgs& args, bool images) {
  std::vector<std::string> overrides = args.positionals();
  if (args.has("checkpoint")) overrides.push_back("checkpoint.resume=" + args.get("checkpoint"));
  const config::Recipe recipe = config::load_recipe(args.require("config", "generate"), overrides);
  L4_CHECK(!images || recipe.arch.vision_config.has_value(),
           "generate --image: the architecture of {} has no vision_config (no vision tower)", recipe.source);
  restore::RestoredModel out = restore::from_recipe(recipe, restore::resume_path(recipe.checkpoint));
  if (out.checkpoint.empty()) L4_LOG_INFO("generate: initial weights of {} (no checkpoint)", recipe.source);
  out.tokenizer = args.get("tokenizer", recipe.tokenizer.path);
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
  generate::SamplingOptions options;
  options.max_tokens = args.get_int("max-tokens", 128);
  options.temperature = args.get_double("temperature", 0.0);
  options.top_p = args.get_double("top-p", 1.0);
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  generate::check_sampling(options);

  const bool images = !image_paths.empty();
  restore::RestoredModel gen = args.has("model") ? from_model_dir(args, images) : from_recipe(args, images);
  const auto tok = tokenizer::Tokenizer::load(gen.tokenizer);
  const config::VisionConfig no_vision;
  const generate::ImagePrompt input = generate::build_image_prompt(
      *tok, prompt, image_paths, gen.arch.vision_config ? *gen.arch.vision_config : no_vision);
  for (int32_t id : {tok->eot_id(), tok->eos_id()}) {
    if (id >= 0) options.stop_ids.push_back(id);
  }
  for (int64_t id : gen.arch.text_config.eos_token_id) options.stop_ids.push_back(id);

  if (images) {
    L4_LOG_INFO("generate: {} image(s), {} tiles, prompt of {} tokens", image_paths.size(), input.num_tiles,
                input.ids.size());
  }
  gen.model->eval();
  const std::vector<int64_t> out = generate::generate(*gen.model, input.ids, input.pixel_values, options);
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
  return {
      {"generate",
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
        {"tokenizer", "PATH", "tokenizer file or directory (default: the model directory / the recipe's)"},
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
