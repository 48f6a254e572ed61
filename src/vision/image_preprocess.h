// Image -> tiles, exactly as Hugging Face's Llama4ImageProcessor (transformers 5.17, torchvision backend):
//   1. canvas: among all (r x c) grids of tile_size squares with r * c <= max_patches, the one needing the
//      least upscaling (or least downscaling if none upscales); ties go to the smallest area;
//   2. aspect-preserving bilinear (antialiased) resize on uint8 pixels, never upscaling beyond
//      max(side, tile_size) unless resize_to_max_canvas;
//   3. zero padding at the bottom/right to the canvas, split into row-major tiles;
//   4. if there is more than one tile, a global tile: the whole image resized to tile_size x tile_size
//      (aspect ratio NOT preserved);
//   5. normalisation (x / 255 - 0.5) / 0.5, computed in bfloat16 like HF.
// Steps 1-4 give uint8 tiles (what datasets store); step 5 is normalize_tiles().
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "config/model_arch.h"
#include "vision/image_decode.h"

namespace l4::vision {

struct PreprocessOptions {
  int64_t tile_size = 336;   // vision_config.image_size
  int64_t max_patches = 16;  // processor's max_patches (Meta's max_num_chunks)
  bool resize_to_max_canvas = false;

  static PreprocessOptions from_config(const config::VisionConfig& vision);
};

// Tiles of one image: rows x cols local tiles, plus one global tile when rows * cols > 1.
struct TileGrid {
  int64_t rows = 1;
  int64_t cols = 1;
  int64_t num_local() const { return rows * cols; }
  int64_t num_tiles() const { return num_local() > 1 ? num_local() + 1 : 1; }
  bool operator==(const TileGrid& other) const { return rows == other.rows && cols == other.cols; }
};

struct Canvas {
  int64_t height = 0, width = 0;
};

// Candidate canvases in pixels, in HF's order (which decides ties).
std::vector<Canvas> supported_canvases(int64_t max_patches, int64_t tile_size);
// The canvas an image of height x width is placed on (HF get_best_fit).
Canvas best_canvas(int64_t height, int64_t width, const PreprocessOptions& options);
// Size the image is resized to before padding to the canvas (HF get_max_res_without_distortion).
std::pair<int64_t, int64_t> resized_size(int64_t height, int64_t width, const Canvas& canvas,
                                         const PreprocessOptions& options);
TileGrid tile_grid(int64_t height, int64_t width, const PreprocessOptions& options);

struct ImageTiles {
  at::Tensor tiles;  // uint8 [grid.num_tiles(), 3, tile_size, tile_size]: local tiles row-major, then global
  TileGrid grid;
};

// Steps 1-4 on RGB pixels.
ImageTiles tile_image(const Image& image, const PreprocessOptions& options);
// Step 5: uint8 [..., 3, H, W] -> bfloat16 values in [-1, 1], bit-identical to HF's pixel_values.
at::Tensor normalize_tiles(const at::Tensor& tiles_u8);

// Several images -> pixel_values [sum of tiles, 3, T, T] (bfloat16) and their grids, in order.
struct PixelValues {
  at::Tensor pixel_values;
  std::vector<TileGrid> grids;
};
PixelValues preprocess_images(const std::vector<Image>& images, const PreprocessOptions& options);

}  // namespace l4::vision
