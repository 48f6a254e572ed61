// A user prompt with images, made ready for generation as HF's Llama4Processor would: the chat template with
// one <|image|> placeholder per image before the text (the template's place for the image parts of a user
// turn), each placeholder expanded into the image's tile tokens (vision/image_tokens.h), and the images
// decoded, tiled and normalised exactly as the training data and HF's Llama4ImageProcessor do.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/model_arch.h"
#include "tokenizer/tokenizer.h"

namespace l4::generate {

struct ImagePrompt {
  std::vector<int64_t> ids;  // chat prompt ending in the assistant header, image placeholders expanded
  at::Tensor pixel_values;   // bfloat16 [total tiles, 3, S, S] (HF's values); undefined without images
  int64_t num_tiles = 0;
};

// A conversation (system turn optional, user and assistant turns) ending in the assistant header; the images
// belong to the first user message, placed as build_image_prompt places them.
ImagePrompt build_chat_prompt(const tokenizer::Tokenizer& tok, std::vector<tokenizer::ChatMessage> messages,
                              const std::vector<std::string>& image_paths,
                              const config::VisionConfig& vision);

// `text` is the user message. Without <|image|> in it, the images go before the text, one placeholder
// each; a text with its own placeholders keeps them where they are, and their count must equal the number
// of images (l4::Error naming both counts). Unreadable or corrupt images: l4::Error naming the file.
ImagePrompt build_image_prompt(const tokenizer::Tokenizer& tok, const std::string& text,
                               const std::vector<std::string>& image_paths,
                               const config::VisionConfig& vision);

}  // namespace l4::generate
