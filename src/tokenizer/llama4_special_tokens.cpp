// The 2048 Llama 4 special-token slots in Meta's order (llama_models/llama4/tokenizer.py).
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/vocab.h"

namespace l4::tokenizer {
namespace {

void add_reserved(std::vector<std::string>& out, const std::string& name, int count, int start) {
  for (int i = start; i < start + count; ++i) out.push_back("<|" + name + "_reserved_special_token_" + std::to_string(i) + "|>");
}

std::vector<std::string> build() {
  std::vector<std::string> t = {"<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>",
                                "<|fim_suffix|>"};
  for (const char* s : {"<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>"}) t.push_back(s);
  add_reserved(t, "text_post_train", 6, 0);
  for (const char* s : {"<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>"}) t.push_back(s);
  add_reserved(t, "text_post_train", 61, 8);
  for (const char* s : {"<|image_start|>", "<|image_end|>"}) t.push_back(s);
  add_reserved(t, "vision", 2, 0);
  for (const char* s : {"<|tile_x_separator|>", "<|tile_y_separator|>"}) t.push_back(s);
  add_reserved(t, "vision", 4, 2);
  t.push_back("<|image|>");
  add_reserved(t, "vision", 1, 6);
  t.push_back("<|patch|>");
  add_reserved(t, "vision", 1041, 7);
  add_reserved(t, "reasoning", 8, 0);
  t.push_back("<|reasoning_thinking_start|>");
  t.push_back("<|reasoning_thinking_end|>");
  for (int i = 0; t.size() < 2048; ++i) t.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  L4_ASSERT(t.size() == 2048 && t[8] == "<|eot|>" && t[92] == "<|patch|>" && t[1143] == "<|reasoning_thinking_end|>");
  return t;
}

}  // namespace

const std::vector<std::string>& llama4_special_token_names() {
  static const std::vector<std::string> names = build();
  return names;
}

}  // namespace l4::tokenizer
