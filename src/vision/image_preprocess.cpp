#include "vision/image_preprocess.h"

#include <ATen/Version.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace l4::vision {
namespace {

// A number as HF's Python code carries it: some sizes are 0-d int64 tensors (from the canvas tensor) and
// turn divisions into float32 tensor arithmetic, others are Python ints giving float64. The difference
// decides the rounding of the resized size, so it is modelled exactly.
struct Num {
  double value;
  bool float32;  // value is a float32 tensor result
};

Num divide(int64_t a, bool a_is_tensor, int64_t b) {
  if (a_is_tensor) return {static_cast<double>(static_cast<float>(a) / static_cast<float>(b)), true};
  return {static_cast<double>(a) / static_cast<double>(b), false};
}

// a < b with torch's promotion: a comparison involving a float32 tensor happens in float32.
bool less(const Num& a, const Num& b) {
  if (a.float32 || b.float32) return static_cast<float>(a.value) < static_cast<float>(b.value);
  return a.value < b.value;
}

int64_t floor_times(int64_t a, const Num& scale) {
  if (scale.float32)
    return static_cast<int64_t>(std::floor(static_cast<float>(a) * static_cast<float>(scale.value)));
  return static_cast<int64_t>(std::floor(static_cast<double>(a) * scale.value));
}

bool native_uint8_bilinear() {
  // torchvision resizes uint8 directly on AVX2/AVX512 (and ARM) CPUs and through float32 otherwise.
  static const bool native = [] {
    const std::string capability = at::get_cpu_capability();
    return capability == "AVX2" || capability == "AVX512" || capability.rfind("NEON", 0) == 0 ||
           capability.rfind("SVE", 0) == 0;
  }();
  return native;
}

// tvF.resize(..., BILINEAR, antialias=True) on a uint8 [N, C, H, W] tensor; F.interpolate with a size and
// antialias calls this same kernel with no scale factors.
at::Tensor resize_u8(const at::Tensor& image, int64_t height, int64_t width) {
  if (image.size(-2) == height && image.size(-1) == width) return image;
  if (image.device().is_cpu() && native_uint8_bilinear()) {
    return at::_upsample_bilinear2d_aa(image, {height, width}, /*align_corners=*/false);
  }
  return at::_upsample_bilinear2d_aa(image.to(at::kFloat), {height, width}, false).round_().to(at::kByte);
}

}  // namespace

PreprocessOptions PreprocessOptions::from_config(const config::VisionConfig& vision) {
  PreprocessOptions options;
  options.tile_size = vision.image_size;
  return options;
}

std::vector<Canvas> supported_canvases(int64_t max_patches, int64_t tile_size) {
  L4_CHECK(max_patches >= 1, "max_patches must be >= 1, got {}", max_patches);
  // HF groups (rows, cols) by aspect ratio rows/cols in first-seen order, walking the tile counts downward.
  std::vector<std::pair<double, std::vector<Canvas>>> by_ratio;
  for (int64_t count = max_patches; count >= 1; --count) {
    for (int64_t rows = 1; rows <= count; ++rows) {
      if (count % rows != 0) continue;
      const int64_t cols = count / rows;
      const double ratio = static_cast<double>(rows) / static_cast<double>(cols);
      auto it =
          std::find_if(by_ratio.begin(), by_ratio.end(), [&](const auto& e) { return e.first == ratio; });
      if (it == by_ratio.end()) it = by_ratio.insert(by_ratio.end(), {ratio, {}});
      it->second.push_back({rows * tile_size, cols * tile_size});
    }
  }
  std::vector<Canvas> canvases;
  for (const auto& entry : by_ratio)
    canvases.insert(canvases.end(), entry.second.begin(), entry.second.end());
  return canvases;
}

Canvas best_canvas(int64_t height, int64_t width, const PreprocessOptions& options) {
  L4_CHECK(height > 0 && width > 0, "cannot tile an empty image ({}x{})", height, width);
  const std::vector<Canvas> canvases = supported_canvases(options.max_patches, options.tile_size);
  // Scales are float32, as in HF (int64 tensor / int).
  std::vector<float> scales;
  for (const Canvas& c : canvases) {
    const float scale_w = static_cast<float>(c.width) / static_cast<float>(width);
    const float scale_h = static_cast<float>(c.height) / static_cast<float>(height);
    scales.push_back(scale_h > scale_w ? scale_w : scale_h);
  }
  bool any_up = false;
  float selected = 0;
  for (float s : scales) {
    if (s < 1) continue;
    if (!any_up) selected = s;
    selected = options.resize_to_max_canvas ? std::max(selected, s) : std::min(selected, s);
    any_up = true;
  }
  if (!any_up) {
    selected = scales.front();
    for (float s : scales) selected = std::max(selected, s);
  }
  // Among canvases with the selected scale, the first one of smallest area.
  const Canvas* best = nullptr;
  for (size_t i = 0; i < canvases.size(); ++i) {
    if (scales[i] != selected) continue;
    if (best == nullptr || canvases[i].height * canvases[i].width < best->height * best->width)
      best = &canvases[i];
  }
  L4_ASSERT(best != nullptr);
  return *best;
}

std::pair<int64_t, int64_t> resized_size(int64_t height, int64_t width, const Canvas& canvas,
                                         const PreprocessOptions& options) {
  // target_size_without_distortion: min(max(side, tile), canvas side) unless resize_to_max_canvas. Python's
  // min keeps its first argument unless the second (a tensor element of the canvas) is strictly smaller.
  int64_t target_h = canvas.height, target_w = canvas.width;
  bool h_tensor = true, w_tensor = true;
  if (!options.resize_to_max_canvas) {
    const int64_t up_h = std::max(height, options.tile_size), up_w = std::max(width, options.tile_size);
    h_tensor = canvas.height < up_h;
    w_tensor = canvas.width < up_w;
    target_h = h_tensor ? canvas.height : up_h;
    target_w = w_tensor ? canvas.width : up_w;
  }
  // get_max_res_without_distortion
  const Num scale_w = divide(target_w, w_tensor, width);
  const Num scale_h = divide(target_h, h_tensor, height);
  int64_t new_h, new_w;
  if (less(scale_w, scale_h)) {
    new_w = target_w;
    new_h = std::min(floor_times(height, scale_w), target_h);
  } else {
    new_h = target_h;
    new_w = std::min(floor_times(width, scale_h), target_w);
  }
  return {std::max<int64_t>(new_h, 1), std::max<int64_t>(new_w, 1)};
}

TileGrid tile_grid(int64_t height, int64_t width, const PreprocessOptions& options) {
  const Canvas canvas = best_canvas(height, width, options);
  return {canvas.height / options.tile_size, canvas.width / options.tile_size};
}

ImageTiles tile_image(const Image& image, const PreprocessOptions& options) {
  L4_CHECK(image.height > 0 && image.width > 0, "cannot tile an empty image ({}x{})", image.height,
           image.width);
  L4_ASSERT(static_cast<int64_t>(image.rgb.size()) == image.height * image.width * 3);
  const int64_t tile = options.tile_size;
  // [1, 3, H, W] viewed over the HWC pixels, the same (channels-last) layout torchvision gets from PIL.
  const at::Tensor pixels =
      torch::from_blob(const_cast<uint8_t*>(image.rgb.data()), {image.height, image.width, 3}, at::kByte)
          .permute({2, 0, 1})
          .unsqueeze(0);
  const Canvas canvas = best_canvas(image.height, image.width, options);
  const auto [new_h, new_w] = resized_size(image.height, image.width, canvas, options);
  at::Tensor resized = resize_u8(pixels, new_h, new_w);
  at::Tensor padded = at::constant_pad_nd(resized, {0, canvas.width - new_w, 0, canvas.height - new_h}, 0);
  const TileGrid grid{canvas.height / tile, canvas.width / tile};
  // [1, 3, rows, T, cols, T] -> [rows * cols, 3, T, T], row-major.
  at::Tensor tiles = padded.reshape({3, grid.rows, tile, grid.cols, tile})
                         .permute({1, 3, 0, 2, 4})
                         .reshape({grid.num_local(), 3, tile, tile});
  if (grid.num_local() > 1) {
    const at::Tensor global = resize_u8(pixels, tile, tile).reshape({1, 3, tile, tile});
    tiles = at::cat({tiles, global}, 0);
  }
  return {tiles.contiguous(), grid};
}

at::Tensor normalize_tiles(const at::Tensor& tiles_u8) {
  L4_CHECK(tiles_u8.scalar_type() == at::kByte && tiles_u8.dim() >= 3 && tiles_u8.size(-3) == 3,
           "normalize_tiles expects uint8 [..., 3, H, W], got {} {}",
           std::string(c10::toString(tiles_u8.scalar_type())), c10::str(tiles_u8.sizes()));
  // HF: images.to(bfloat16) * (1/255), then tvF.normalize with bfloat16 mean/std tensors of 0.5.
  const auto bf16 = tiles_u8.options().dtype(at::kBFloat16);
  const at::Tensor mean = at::full({3, 1, 1}, 0.5, bf16);
  const at::Tensor std = at::full({3, 1, 1}, 0.5, bf16);
  return tiles_u8.to(at::kBFloat16).mul(1.0 / 255.0).sub(mean).div_(std);
}

PixelValues preprocess_images(const std::vector<Image>& images, const PreprocessOptions& options) {
  PixelValues out;
  std::vector<at::Tensor> parts;
  for (const Image& image : images) {
    ImageTiles tiles = tile_image(image, options);
    parts.push_back(normalize_tiles(tiles.tiles));
    out.grids.push_back(tiles.grid);
  }
  out.pixel_values = parts.empty() ? at::empty({0, 3, options.tile_size, options.tile_size}, at::kBFloat16)
                                   : at::cat(parts, 0);
  return out;
}

}  // namespace l4::vision
