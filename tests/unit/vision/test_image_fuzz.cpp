// Mutated image bytes must give an image or an l4::Error, never a crash, hang or another exception.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "png_builder.h"
#include "vision/image_decode.h"

namespace l4::vision {
namespace {

using testing::fix_png_crcs;
using testing::make_png;
using testing::pattern;
using testing::png_chunk;
using testing::stb_jpeg;
using testing::stb_png;

std::vector<std::string> seeds() {
  std::string palette;
  for (int i = 0; i < 8; ++i)
    palette += {static_cast<char>(i * 30), static_cast<char>(200 - i * 20), static_cast<char>(i)};
  std::vector<std::string> rows;
  for (int y = 0; y < 6; ++y) rows.push_back(std::string("\x01\x23\x45\x67\x01", 5));  // 4-bit indices
  return {
      stb_png(23, 17, 3, pattern(23, 17, 3, 1)),
      stb_png(9, 11, 4, pattern(9, 11, 4, 2)),
      stb_png(12, 5, 1, pattern(12, 5, 1, 3)),
      make_png(10, 6, 3, 4, rows,
               {png_chunk("PLTE", palette), png_chunk("tRNS", std::string("\x00\x40", 2))}),
      stb_jpeg(33, 21, 3, pattern(33, 21, 3, 4), 90),
      stb_jpeg(16, 16, 1, pattern(16, 16, 1, 5), 75),
      testing::with_jpeg_exif(stb_jpeg(12, 7, 3, pattern(12, 7, 3, 6), 80), 6),
      testing::with_png_exif(stb_png(5, 8, 3, pattern(5, 8, 3, 7)), 8),
  };
}

std::string mutate(const std::string& seed, std::mt19937& rng) {
  std::string s = seed;
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    switch (rng() % 6) {
      case 0:
        s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;  // bit flip
      case 1:
        s[pick(s.size())] = static_cast<char>(rng());
        break;  // random byte
      case 2:
        s[pick(s.size())] = static_cast<char>((rng() % 2) ? 0xFF : 0x00);
        break;
      case 3:
        s.resize(pick(s.size() + 1));
        break;  // truncate
      case 4:
        s.insert(pick(s.size() + 1), std::string(1 + pick(8), static_cast<char>(rng())));
        break;
      case 5: {  // delete a run
        const size_t at = pick(s.size());
        s.erase(at, 1 + pick(8));
        break;
      }
    }
  }
  return s;
}

TEST(ImageFuzz, MutatedBytesNeverCrash) {
  const std::vector<std::string> inputs = seeds();
  for (const std::string& seed : inputs)
    ASSERT_NO_THROW(decode_image(seed, "seed")) << "seed images must decode";
  std::mt19937 rng(20240501);
  int decoded = 0, rejected = 0;
  constexpr int kMutations = 10000;
  for (int i = 0; i < kMutations; ++i) {
    const std::string& seed = inputs[i % inputs.size()];
    std::string bytes = mutate(seed, rng);
    // Half of the PNG mutations get their CRCs repaired, so that the decoder itself is exercised.
    if (seed[1] == 'P' && (i / inputs.size()) % 2 == 0) fix_png_crcs(bytes);
    try {
      // A small pixel limit keeps headers mutated into huge sizes cheap.
      const Image image = decode_image(bytes, "fuzz", DecodeOptions{1 << 20});
      ASSERT_GT(image.height, 0);
      ASSERT_GT(image.width, 0);
      ASSERT_EQ(image.rgb.size(), static_cast<size_t>(image.height * image.width * 3));
      ++decoded;
    } catch (const l4::Error& e) {
      ASSERT_EQ(std::string(e.what()).rfind("fuzz: ", 0), 0u) << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "mutation " << i << ": unexpected exception: " << e.what();
    }
  }
  EXPECT_EQ(decoded + rejected, kMutations);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(decoded, 0);
  std::printf("fuzz: %d mutations, %d decoded, %d rejected\n", kMutations, decoded, rejected);
}

}  // namespace
}  // namespace l4::vision
