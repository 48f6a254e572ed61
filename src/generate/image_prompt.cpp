#include "generate/image_prompt.h"

#include <algorithm>

#include "core/error.h"
#include "vision/image_decode.h"
#include "vision/image_preprocess.h"
#include "vision/image_tokens.h"

namespace l4::generate {

ImagePrompt build_image_prompt(const tokenizer::Tokenizer& tok, const std::string& text,
                               const std::vector<std::string>& image_paths,
                               const config::VisionConfig& vision) {
  tokenizer::ChatMessage message;
  message.role = "user";
  message.content = text;
  return build_chat_prompt(tok, {message}, image_paths, vision);
}

ImagePrompt build_chat_prompt(const tokenizer::Tokenizer& tok, std::vector<tokenizer::ChatMessage> messages,
                              const std::vector<std::string>& image_paths,
                              const config::VisionConfig& vision) {
  const vision::ImageTokenIds token_ids = vision::ImageTokenIds::from_lookup([&](const std::string& name) {
    const auto id = tok.special_id(name);
    return id ? int64_t{*id} : int64_t{-1};
  });
  if (!image_paths.empty()) {
    L4_CHECK(token_ids.complete(),
             "{}: the tokenizer lacks the Llama 4 image tokens (<|image|>, <|patch|>, ...)", tok.path());
  }
  const auto first_user = std::find_if(messages.begin(), messages.end(),
                                       [](const tokenizer::ChatMessage& m) { return m.role == "user"; });
  L4_CHECK(first_user != messages.end(), "generate: the conversation has no user message");
  tokenizer::ChatMessage& message = *first_user;
  const std::string& text = message.content;
  // Placeholders typed in the text are parsed as special tokens by the chat template; without any, the
  // images precede the text as in HF's template for [image parts..., text part].
  const bool has_placeholders = token_ids.image >= 0 && text.find("<|image|>") != std::string::npos;
  if (!has_placeholders) message.num_images = static_cast<int64_t>(image_paths.size());
  const tokenizer::EncodedChat chat = tokenizer::encode_chat(tok, messages, /*add_generation_prompt=*/true);
  ImagePrompt out;
  out.ids.assign(chat.ids.begin(), chat.ids.end());
  if (image_paths.empty()) return out;

  const vision::PreprocessOptions preprocess = vision::PreprocessOptions::from_config(vision);
  std::vector<vision::Image> images;
  images.reserve(image_paths.size());
  for (const std::string& path : image_paths) images.push_back(vision::load_image(path));
  const vision::PixelValues pixels = vision::preprocess_images(images, preprocess);
  out.ids =
      vision::expand_image_placeholders(out.ids, pixels.grids, vision::patches_per_tile(vision), token_ids);
  out.pixel_values = pixels.pixel_values;
  out.num_tiles = pixels.pixel_values.size(0);
  return out;
}

}  // namespace l4::generate
