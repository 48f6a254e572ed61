// llama4 generate: chat generation with a KV cache (optionally with a PEFT LoRA adapter).
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "lora/kv_decoder.h"
#include "lora/peft_adapter.h"
#include "model/pretrained.h"
#include "tokenizer/tokenizer.h"

namespace l4::cli {
namespace {

int run_generate(const ParsedArgs& args) {
  const std::string model_dir = args.require("model", "generate");
  const std::string prompt = args.require("prompt", "generate");
  L4_CHECK(!args.has("image"), "generate --image: images are not supported yet (text prompts only)");
  lora::SamplingOptions options;
  options.max_tokens = args.get_int("max-tokens", 128);
  options.temperature = args.get_double("temperature", 0.0);
  options.top_p = args.get_double("top-p", 1.0);
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  L4_CHECK(options.max_tokens >= 1, "--max-tokens must be >= 1 (got {})", options.max_tokens);

  const std::string tok_path = args.get("tokenizer", model_dir);
  const auto tok = tokenizer::Tokenizer::load(tok_path);
  model::PretrainedText loaded = model::load_pretrained_text(model_dir);
  if (args.has("adapter")) lora::load_peft_adapter(*loaded.model, args.get("adapter"));
  loaded.model->eval();

  tokenizer::ChatMessage message;
  message.role = "user";
  message.content = prompt;
  const auto chat = tokenizer::encode_chat(*tok, {message}, /*add_generation_prompt=*/true);
  const std::vector<int64_t> prompt_ids(chat.ids.begin(), chat.ids.end());
  for (int32_t id : {tok->eot_id(), tok->eos_id()}) {
    if (id >= 0) options.stop_ids.push_back(id);
  }
  for (int64_t id : loaded.arch.text_config.eos_token_id) options.stop_ids.push_back(id);
  const std::vector<int64_t> out = lora::generate(*loaded.model, prompt_ids, options);
  std::cout << tok->decode(std::vector<int32_t>(out.begin(), out.end())) << std::endl;
  return 0;
}

}  // namespace

Command make_generate_command() {
  return {{"generate",
           "chat generation with a KV cache",
           "--model DIR [--adapter DIR] --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] "
           "[--seed S]",
           {{"model", "DIR", "HF model directory"},
            {"adapter", "DIR", "PEFT adapter directory"},
            {"tokenizer", "PATH", "tokenizer file or directory (default: the model directory)"},
            {"prompt", "TEXT", "user message"},
            {"image", "FILE", "image for the prompt (not supported yet)", true},
            {"max-tokens", "N", "tokens to generate (default 128)"},
            {"temperature", "T", "0 = greedy (default)"},
            {"top-p", "P", "nucleus sampling (default 1)"},
            {"seed", "S", "sampling seed (default 0)"}},
           /*accepts_overrides=*/false},
          run_generate};
}

}  // namespace l4::cli
