#include "vision/image_tokens.h"

#include <cmath>

#include "core/error.h"

namespace l4::vision {

ImageTokenIds ImageTokenIds::from_lookup(const std::function<int64_t(const std::string&)>& special_id) {
  ImageTokenIds ids;
  ids.image_start = special_id("<|image_start|>");
  ids.image_end = special_id("<|image_end|>");
  ids.image = special_id("<|image|>");
  ids.patch = special_id("<|patch|>");
  ids.tile_x_separator = special_id("<|tile_x_separator|>");
  ids.tile_y_separator = special_id("<|tile_y_separator|>");
  return ids;
}

int64_t patches_per_tile(const config::VisionConfig& vision) {
  L4_CHECK(vision.patch_size > 0 && vision.image_size % vision.patch_size == 0,
           "vision_config.image_size ({}) must be a multiple of patch_size ({})", vision.image_size,
           vision.patch_size);
  L4_CHECK(vision.pixel_shuffle_ratio > 0, "vision_config.pixel_shuffle_ratio must be > 0");
  // HF: downsample_ratio = int(round(1 / ratio^2)); per tile (H // p) * (W // p) // downsample_ratio.
  const int64_t downsample = std::llround(1.0 / (vision.pixel_shuffle_ratio * vision.pixel_shuffle_ratio));
  const int64_t side = vision.image_size / vision.patch_size;
  return side * side / downsample;
}

std::vector<int64_t> image_token_layout(const TileGrid& grid, int64_t patches_per_tile,
                                        const ImageTokenIds& ids) {
  L4_ASSERT(grid.rows >= 1 && grid.cols >= 1 && patches_per_tile >= 1);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>((grid.num_local() + 1) * (patches_per_tile + 1) + grid.rows + 2));
  out.push_back(ids.image_start);
  if (grid.num_local() > 1) {
    for (int64_t row = 0; row < grid.rows; ++row) {
      for (int64_t col = 0; col < grid.cols; ++col) {
        out.insert(out.end(), patches_per_tile, ids.patch);
        if (col + 1 < grid.cols) out.push_back(ids.tile_x_separator);
      }
      out.push_back(ids.tile_y_separator);
    }
  }
  out.push_back(ids.image);
  out.insert(out.end(), patches_per_tile, ids.patch);
  out.push_back(ids.image_end);
  return out;
}

std::vector<int64_t> expand_image_placeholders(const std::vector<int64_t>& tokens,
                                               const std::vector<TileGrid>& grids, int64_t patches_per_tile,
                                               const ImageTokenIds& ids) {
  const auto placeholders = static_cast<size_t>(std::count(tokens.begin(), tokens.end(), ids.image));
  L4_CHECK(placeholders == grids.size(),
           "the text has {} image placeholders (<|image|>) but {} images were given", placeholders,
           grids.size());
  std::vector<int64_t> out;
  out.reserve(tokens.size());
  size_t next = 0;
  for (int64_t token : tokens) {
    if (token != ids.image) {
      out.push_back(token);
      continue;
    }
    const std::vector<int64_t> layout = image_token_layout(grids[next++], patches_per_tile, ids);
    out.insert(out.end(), layout.begin(), layout.end());
  }
  return out;
}

}  // namespace l4::vision
