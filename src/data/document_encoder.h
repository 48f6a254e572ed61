// How records become token documents: the encoder interface prepare calls (implemented over the tokenizer
// and the vision tiling by the command line) and the image-placeholder expansion encoders share.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset_format.h"
#include "data/records.h"

namespace l4::data {

// Turns records into token documents. Errors are l4::Error without a location; the pipeline adds it.
class DocumentEncoder {
 public:
  virtual ~DocumentEncoder() = default;
  virtual TokenizerInfo tokenizer_info() const = 0;
  // A pretraining document: every token is a target.
  virtual Document encode_text(std::string_view text) const = 0;
  // An SFT conversation: the content (and end of turn) of assistant turns whose `target` is set are
  // targets; images expanded into their tokens and tiles.
  virtual Document encode_chat(const std::vector<ChatTurn>& turns) const = 0;
};

// One image as the vision code encodes it: tiles and the tokens that stand for it in the text.
struct EncodedImage {
  std::vector<uint8_t> tiles;  // n * kTileBytes
  uint64_t grid_rows = 1, grid_cols = 1;
  std::vector<int32_t> tokens;  // <|image_start|> ... <|patch|> ... <|image_end|>
};
using ImageEncoder = std::function<EncodedImage(const std::string& path)>;

// Replaces the k-th occurrence of `placeholder` in ids with images[k]'s tokens (never targets) and
// records the spans; the number of placeholders must equal images.size().
Document insert_encoded_images(const std::vector<int32_t>& ids, const std::vector<uint8_t>& mask,
                               int32_t placeholder, std::vector<EncodedImage> images);

}  // namespace l4::data
