// Token layout of images in the text stream (HF Llama4Processor._prompt_split_image, Meta _encode_image):
//   one tile:  <|image_start|> <|image|> P*n <|image_end|>
//   r x c:     <|image_start|> for each row: (P*n <|tile_x_separator|>) ... P*n <|tile_y_separator|>
//              then <|image|> P*n (global tile) <|image_end|>
// where P is <|patch|> and n the patches per tile after pixel shuffle (144 for 336/14 and ratio 0.5).
// Ids come from the tokenizer, so they are parameters here.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/model_arch.h"
#include "vision/image_preprocess.h"

namespace l4::vision {

struct ImageTokenIds {
  int64_t image_start = -1;       // <|image_start|>
  int64_t image_end = -1;         // <|image_end|>
  int64_t image = -1;             // <|image|>: placeholder in chat text, and the global-tile marker
  int64_t patch = -1;             // <|patch|>: one per vision feature (config image_token_index)
  int64_t tile_x_separator = -1;  // <|tile_x_separator|>
  int64_t tile_y_separator = -1;  // <|tile_y_separator|>

  // Looks the six tokens up by name, e.g. with [&](auto& s) { return tokenizer.special_id(s); }.
  static ImageTokenIds from_lookup(const std::function<int64_t(const std::string&)>& special_id);
  // Whether the tokenizer had all six (images need every one of them).
  bool complete() const {
    return image_start >= 0 && image_end >= 0 && image >= 0 && patch >= 0 && tile_x_separator >= 0 &&
           tile_y_separator >= 0;
  }
};

// Vision features per tile: (image_size / patch_size)^2 * pixel_shuffle_ratio^2 (HF's integer formula).
int64_t patches_per_tile(const config::VisionConfig& vision);

// The tokens standing for one image.
std::vector<int64_t> image_token_layout(const TileGrid& grid, int64_t patches_per_tile,
                                        const ImageTokenIds& ids);

// Replaces the k-th <|image|> placeholder of `tokens` by the layout of grids[k]. The number of placeholders
// must equal grids.size() (l4::Error naming both counts otherwise).
std::vector<int64_t> expand_image_placeholders(const std::vector<int64_t>& tokens,
                                               const std::vector<TileGrid>& grids, int64_t patches_per_tile,
                                               const ImageTokenIds& ids);

}  // namespace l4::vision
