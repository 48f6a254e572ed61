// llama4 generate: chat generation with a KV cache, optionally with images (early fusion at prefill) and a
// PEFT LoRA adapter. The model is an HF directory (--model) or what a recipe trains (--config): its
// architecture and initial weights, the vision tower as training builds it, and the checkpoint the recipe
// would resume from, the way `llama4 eval` sees it.
#include <unistd.h>

#include <torch/cuda.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "config/model_arch.h"
#include "config/recipe.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "generate/generator.h"
#include "generate/image_prompt.h"
#include "generate/text_stream.h"
#include "restore/restore.h"
#include "tokenizer/tokenizer.h"

namespace l4::cli {
namespace {

// --device cpu | cuda | cuda:N; l4::Error naming the flag for another value or a build without CUDA.
at::Device device_from_args(const ParsedArgs& args) {
  const std::string name = args.get("device", "cpu");
  if (name == "cpu") return at::kCPU;
  int64_t index = 0;
  const bool cuda = name == "cuda" || (starts_with(name, "cuda:") && name.size() > 5 &&
                                       name.find_first_not_of("0123456789", 5) == std::string::npos);
  L4_CHECK(cuda, "generate --device: expected cpu, cuda or cuda:N, got '{}'", name);
  if (name.size() > 5) index = std::stoll(name.substr(5));
  L4_CHECK(torch::cuda::is_available(),
           "generate --device {}: this build of llama4 (its LibTorch) has no CUDA device available; use "
           "--device cpu",
           name);
  L4_CHECK(index < static_cast<int64_t>(torch::cuda::device_count()),
           "generate --device {}: only {} CUDA device(s) are visible", name, torch::cuda::device_count());
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

// --dtype float32 | bfloat16: the storage of the model's parameters.
at::ScalarType dtype_from_args(const ParsedArgs& args) {
  const std::string name = args.get("dtype", "float32");
  L4_CHECK(name == "float32" || name == "bfloat16",
           "generate --dtype: expected float32 or bfloat16, got '{}'", name);
  return name == "bfloat16" ? at::kBFloat16 : at::kFloat;
}

restore::RestoredModel from_model_dir(const ParsedArgs& args, bool images) {
  const std::string dir = args.require("model", "generate");
  L4_CHECK(!images || config::load_model_arch(dir).vision_config.has_value(),
           "generate --image: {} is a text-only model (its config.json has no vision_config); images need "
           "a multimodal (Llama4ForConditionalGeneration) model directory",
           dir);
  restore::RestoredModel out = restore::from_hf_dir(dir, args.get("adapter", ""), device_from_args(args),
                                                    images, dtype_from_args(args));
  out.tokenizer = args.get("tokenizer", dir);
  return out;
}

// The recipe's model on one process, with the trained tensors of the checkpoint it resumes from.
restore::RestoredModel from_recipe(const ParsedArgs& args, bool images) {
  std::vector<std::string> overrides = args.positionals();
  if (args.has("checkpoint")) overrides.push_back("checkpoint.resume=" + args.get("checkpoint"));
  if (args.has("dtype")) overrides.push_back("model.dtype=" + args.get("dtype"));
  const at::Device device = device_from_args(args);
  dtype_from_args(args);  // validates --dtype before the recipe sees it
  const config::Recipe recipe = config::load_recipe(args.require("config", "generate"), overrides);
  L4_CHECK(!images || recipe.arch.vision_config.has_value(),
           "generate --image: the architecture of {} has no vision_config (no vision tower)", recipe.source);
  restore::RestoredModel out = restore::from_recipe(recipe, restore::resume_path(recipe.checkpoint), device);
  if (out.checkpoint.empty()) L4_LOG_INFO("generate: initial weights of {} (no checkpoint)", recipe.source);
  out.tokenizer = args.get("tokenizer", recipe.tokenizer.path);
  return out;
}

generate::SamplingOptions sampling_from_args(const ParsedArgs& args) {
  L4_CHECK(!(args.has("max-new-tokens") && args.has("max-tokens")),
           "generate: give --max-new-tokens or its older name --max-tokens, not both");
  generate::SamplingOptions options;
  options.max_new_tokens = args.get_int("max-new-tokens", args.get_int("max-tokens", 128));
  options.temperature = args.get_double("temperature", 0.0);
  options.top_k = args.get_int("top-k", 0);
  options.top_p = args.get_double("top-p", 1.0);
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  L4_CHECK(options.temperature > 0.0 || (options.top_k == 0 && options.top_p == 1.0),
           "generate: --top-k and --top-p shape sampling; give a --temperature > 0 with them (0 is greedy)");
  generate::check_sampling(options);
  return options;
}

// One assistant turn: generates after `prompt`, streaming the text to stdout unless ids are asked for.
// Returns the answer's text (cut before a stop string).
std::string answer(generate::ChatSession& session, const tokenizer::Tokenizer& tok,
                   const generate::ImagePrompt& prompt, const at::Tensor& pixel_values,
                   const generate::SamplingOptions& options, const ParsedArgs& args) {
  const bool print_ids = args.has("ids");
  generate::TextStream stream(
      [&](const std::vector<int64_t>& ids) {
        return tok.decode_bytes(std::vector<int32_t>(ids.begin(), ids.end()));
      },
      args.all("stop"),
      [&](const std::string& piece) {
        if (print_ids) return;
        std::cout << piece << std::flush;
      });
  std::vector<int64_t> kept;  // the ids up to a stop string
  session.respond(prompt.ids, pixel_values, options, [&](int64_t id) {
    const bool go_on = stream.push(id);
    if (go_on) kept.push_back(id);
    return go_on;
  });
  const std::string text = stream.finish();
  if (print_ids) {
    for (size_t i = 0; i < kept.size(); ++i) std::cout << (i ? " " : "") << kept[i];
  }
  std::cout << std::endl;
  return text;
}

int run_generate(const ParsedArgs& args) {
  const bool interactive = args.has("interactive");
  L4_CHECK(interactive != args.has("prompt"),
           "generate: give --prompt TEXT, or --interactive to read the user's messages from standard input");
  const std::vector<std::string> image_paths = args.all("image");
  L4_CHECK(args.has("model") != args.has("config"), "generate: give either --model DIR or --config RECIPE");
  L4_CHECK(args.has("config") || (!args.has("checkpoint") && args.positionals().empty()),
           "generate: --checkpoint and key=value overrides go with --config");
  L4_CHECK(!args.has("config") || !args.has("adapter"),
           "generate: --adapter goes with --model (a recipe's LoRA tensors come from its checkpoint)");
  generate::SamplingOptions options = sampling_from_args(args);

  const bool images = !image_paths.empty();
  restore::RestoredModel gen = args.has("model") ? from_model_dir(args, images) : from_recipe(args, images);
  const auto tok = tokenizer::Tokenizer::load(gen.tokenizer);
  for (int32_t id : {tok->eot_id(), tok->eos_id()}) {
    if (id >= 0) options.stop_ids.push_back(id);
  }
  for (int64_t id : gen.arch.text_config.eos_token_id) options.stop_ids.push_back(id);
  const config::VisionConfig no_vision;
  const config::VisionConfig& vision = gen.arch.vision_config ? *gen.arch.vision_config : no_vision;
  const int64_t context = gen.arch.text_config.max_position_embeddings;

  std::vector<tokenizer::ChatMessage> messages;
  if (args.has("system")) messages.push_back({"system", args.get("system")});
  gen.model->eval();
  generate::ChatSession session(*gen.model, options.seed);
  // The images belong to the first user message; their tiles go to the vision tower once, with it.
  auto turn = [&](const std::string& user_text) {
    messages.push_back({"user", user_text});
    const generate::ImagePrompt prompt = generate::build_chat_prompt(*tok, messages, image_paths, vision);
    const int64_t length = static_cast<int64_t>(prompt.ids.size());
    L4_CHECK(
        length + options.max_new_tokens <= context,
        "generate: the prompt ({} tokens) plus --max-new-tokens {} exceed the model's context of {} tokens "
        "(max_position_embeddings)",
        length, options.max_new_tokens, context);
    if (images && session.cached_tokens() == 0) {
      L4_LOG_INFO("generate: {} image(s), {} tiles, prompt of {} tokens", image_paths.size(),
                  prompt.num_tiles, length);
    }
    const at::Tensor pixels = session.cached_tokens() == 0 ? prompt.pixel_values : at::Tensor();
    messages.push_back({"assistant", answer(session, *tok, prompt, pixels, options, args)});
    L4_LOG_DEBUG("generate: {} of {} prompt tokens came from the KV cache", session.reused_tokens(), length);
  };
  if (!interactive) {
    turn(args.get("prompt"));
    return 0;
  }
  // A chat: one user message per line; an empty line or end of input ends it.
  const bool tty = ::isatty(STDIN_FILENO);
  for (std::string line;;) {
    if (tty) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line) || line.empty() || line == "/exit") break;
    turn(line);
  }
  return 0;
}

}  // namespace

Command make_generate_command() {
  return {
      {"generate",
       "chat generation with a KV cache (text, or text with images)",
       "(--model DIR [--adapter DIR] | --config RECIPE.yaml [--checkpoint DIR] [key.path=value ...]) "
       "(--prompt TEXT | --interactive) [--system TEXT] [--image FILE ...] [--max-new-tokens N] "
       "[--temperature T] [--top-k K] [--top-p P] [--seed S] [--stop TEXT ...] [--ids] "
       "[--device cpu|cuda[:N]] [--dtype float32|bfloat16]",
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
        {"interactive", "",
         "chat: read one user message per line from standard input (empty line ends); "
         "the KV cache is kept across turns"},
        {"system", "TEXT", "system message before the conversation"},
        {"max-new-tokens", "N", "tokens to generate per answer (default 128)"},
        {"max-tokens", "N", "older name of --max-new-tokens"},
        {"temperature", "T", "0 = greedy (default); > 0 samples"},
        {"top-k", "K", "sample among the K most likely tokens (default 0: off)"},
        {"top-p", "P", "nucleus sampling: the most likely tokens holding mass P (default 1: off)"},
        {"seed", "S", "sampling seed (default 0)"},
        {"stop", "TEXT", "end the answer before this text (repeatable); <|eot|> and eos always end it", true},
        {"ids", "", "print the generated token ids instead of the text"},
        {"device", "DEV", "cpu (default), cuda or cuda:N: the model is built and run there"},
        {"dtype", "TYPE", "float32 (default) or bfloat16: storage of the model's parameters"}},
       /*accepts_overrides=*/true},
      run_generate};
}

}  // namespace l4::cli
