// Token layout of images, placeholder expansion and tiling invariants (HF values are checked in the parity
// tests; these pin the documented structure).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/error.h"
#include "vision/image_preprocess.h"
#include "vision/image_tokens.h"

namespace l4::vision {
namespace {

ImageTokenIds ids() {
  // The Llama 4 ids (architecture reference, special-token table).
  return ImageTokenIds::from_lookup([](const std::string& name) -> int64_t {
    if (name == "<|image_start|>") return 200080;
    if (name == "<|image_end|>") return 200081;
    if (name == "<|tile_x_separator|>") return 200084;
    if (name == "<|tile_y_separator|>") return 200085;
    if (name == "<|image|>") return 200090;
    if (name == "<|patch|>") return 200092;
    throw std::runtime_error("unexpected token " + name);
  });
}

int64_t count(const std::vector<int64_t>& v, int64_t id) {
  return std::count(v.begin(), v.end(), id);
}

TEST(ImageTokens, PatchesPerTile) {
  config::VisionConfig vision;
  vision.image_size = 336;
  vision.patch_size = 14;
  vision.pixel_shuffle_ratio = 0.5;
  EXPECT_EQ(patches_per_tile(vision), 144);
}

TEST(ImageTokens, SingleTileLayout) {
  const std::vector<int64_t> t = image_token_layout({1, 1}, 144, ids());
  ASSERT_EQ(t.size(), 147u);
  EXPECT_EQ(t[0], 200080);
  EXPECT_EQ(t[1], 200090);
  EXPECT_EQ(t.back(), 200081);
  EXPECT_EQ(count(t, 200092), 144);
  EXPECT_EQ(count(t, 200084) + count(t, 200085), 0);
}

TEST(ImageTokens, GridLayoutLengthsAndOrder) {
  // Total 145 n + 147 for n > 1 tiles: 727 for 2x2, 2467 for 16 tiles.
  EXPECT_EQ(image_token_layout({2, 2}, 144, ids()).size(), 727u);
  EXPECT_EQ(image_token_layout({4, 4}, 144, ids()).size(), 2467u);
  EXPECT_EQ(image_token_layout({1, 16}, 144, ids()).size(), 2467u);
  // 2 x 3 with 2 patches per tile, written out.
  const int64_t S = 200080, E = 200081, X = 200084, Y = 200085, I = 200090, P = 200092;
  const std::vector<int64_t> expected = {S, P, P, X, P, P, X, P, P, Y, P, P, X, P, P, X, P, P, Y, I, P, P, E};
  EXPECT_EQ(image_token_layout({2, 3}, 2, ids()), expected);
}

TEST(ImageTokens, ExpandsPlaceholdersInOrder) {
  const std::vector<int64_t> text = {1, 200090, 2, 3, 200090};
  const std::vector<int64_t> out = expand_image_placeholders(text, {{1, 1}, {1, 2}}, 2, ids());
  std::vector<int64_t> expected = {1};
  for (int64_t t : image_token_layout({1, 1}, 2, ids())) expected.push_back(t);
  expected.push_back(2);
  expected.push_back(3);
  for (int64_t t : image_token_layout({1, 2}, 2, ids())) expected.push_back(t);
  EXPECT_EQ(out, expected);
}

TEST(ImageTokens, PlaceholderCountMismatchNamesBothCounts) {
  try {
    expand_image_placeholders({200090, 5, 200090, 200090}, {{1, 1}, {2, 2}}, 144, ids());
    FAIL() << "expected an error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 image placeholders"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2 images"), std::string::npos) << e.what();
  }
}

TEST(ImageTiling, CanvasesAreAllGridsUpToMaxPatches) {
  // Pairs (r, c) with r * c <= 16: sum over r of floor(16 / r) = 50.
  const std::vector<Canvas> canvases = supported_canvases(16, 336);
  EXPECT_EQ(canvases.size(), 50u);
  for (const Canvas& c : canvases) {
    EXPECT_EQ(c.height % 336, 0);
    EXPECT_LE((c.height / 336) * (c.width / 336), 16);
  }
  EXPECT_EQ(supported_canvases(1, 336).size(), 1u);
}

TEST(ImageTiling, TilesAndGlobalTile) {
  PreprocessOptions options;
  Image small{20, 30, std::vector<uint8_t>(20 * 30 * 3, 200)};
  const ImageTiles one = tile_image(small, options);
  EXPECT_EQ(one.grid, (TileGrid{1, 1}));
  EXPECT_EQ(one.tiles.sizes(), (std::vector<int64_t>{1, 3, 336, 336}));

  Image wide{336, 900, std::vector<uint8_t>(336 * 900 * 3, 255)};
  const ImageTiles many = tile_image(wide, options);
  EXPECT_EQ(many.grid, (TileGrid{1, 3}));
  ASSERT_EQ(many.tiles.size(0), 4);  // 3 local tiles + the global one
  // The image fills 900 of the 1008 canvas columns; the rest of the last tile is zero padding.
  const at::Tensor last = many.tiles[2];
  EXPECT_EQ(last.slice(2, 0, 900 - 672).min().item<int>(), 255);
  EXPECT_EQ(last.slice(2, 900 - 672).max().item<int>(), 0);
  EXPECT_EQ(many.tiles[3].min().item<int>(), 255);  // global tile: whole image, no padding

  const at::Tensor values = normalize_tiles(many.tiles);
  EXPECT_EQ(values.scalar_type(), at::kBFloat16);
  EXPECT_EQ(values[0].max().item<float>(), 1.0f);
  EXPECT_EQ(values[2].min().item<float>(), -1.0f);
}

TEST(ImageTiling, RejectsEmptyImages) {
  EXPECT_THROW(tile_image(Image{}, PreprocessOptions{}), l4::Error);
  EXPECT_THROW(best_canvas(0, 5, PreprocessOptions{}), l4::Error);
}

}  // namespace
}  // namespace l4::vision
