// Image decoding: colour conversions, and bad files rejected with an l4::Error naming the file.
#include <gtest/gtest.h>

#include "core/checksum.h"

#include <filesystem>

#include "common/temp_dir.h"
#include "core/error.h"
#include "png_builder.h"
#include "vision/image_decode.h"
#include "vision/png_check.h"

namespace l4::vision {
namespace {

using testing::make_png;
using testing::pattern;
using testing::png_chunk;
using testing::stb_jpeg;
using testing::stb_png;

// Expects load_image(path) to throw l4::Error mentioning the path and `fragment`.
void expect_rejected(const std::string& path, const std::string& fragment) {
  try {
    load_image(path);
    ADD_FAILURE() << path << ": expected an error containing '" << fragment << "'";
  } catch (const l4::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(Crc32, StandardCheckValue) {
  // The CRC-32 check value from the PNG specification / ISO 3309.
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32("56789", crc32("1234")), 0xCBF43926u);
}

TEST(ImageDecode, PngChannelCountsBecomeRgb) {
  const int w = 13, h = 9;
  for (int channels = 1; channels <= 4; ++channels) {
    const std::vector<uint8_t> src = pattern(w, h, channels, 10 + channels);
    const Image image = decode_image(stb_png(w, h, channels, src), "mem.png");
    ASSERT_EQ(image.height, h);
    ASSERT_EQ(image.width, w);
    for (int i = 0; i < w * h; ++i) {
      for (int c = 0; c < 3; ++c) {
        // grey (+alpha): replicated; RGB(A): alpha dropped, not blended.
        const uint8_t expected = channels <= 2 ? src[i * channels] : src[i * channels + c];
        ASSERT_EQ(image.rgb[i * 3 + c], expected) << "channels " << channels << " pixel " << i;
      }
    }
  }
}

TEST(ImageDecode, PalettePngWithTransparencyIsExpanded) {
  std::string palette;
  for (int i = 0; i < 4; ++i)
    palette += {static_cast<char>(60 * i), static_cast<char>(255 - 50 * i), static_cast<char>(i * i * 9)};
  const std::string trns = png_chunk("tRNS", std::string("\x00\x80", 2));
  const std::vector<std::string> rows = {std::string("\x00\x01\x02", 3), std::string("\x03\x02\x01", 3)};
  const Image image = decode_image(make_png(3, 2, 3, 8, rows, {png_chunk("PLTE", palette), trns}), "pal.png");
  ASSERT_EQ(image.height, 2);
  ASSERT_EQ(image.width, 3);
  const int index[6] = {0, 1, 2, 3, 2, 1};
  for (int i = 0; i < 6; ++i) {
    for (int c = 0; c < 3; ++c)
      EXPECT_EQ(image.rgb[i * 3 + c], static_cast<uint8_t>(palette[index[i] * 3 + c]));
  }
}

TEST(ImageDecode, GreyWithLowBitDepthIsScaled) {
  // 2-bit grey: samples 0..3 map to 0, 85, 170, 255.
  const Image image =
      decode_image(make_png(4, 1, 0, 2, {std::string("\x1b", 1)}), "grey2.png");  // 00 01 10 11
  ASSERT_EQ(image.width, 4);
  const uint8_t expected[4] = {0, 85, 170, 255};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(image.rgb[i * 3 + 1], expected[i]);
}

TEST(ImageDecode, JpegDecodesCloseToItsSource) {
  const int w = 64, h = 48;
  std::vector<uint8_t> src(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) src[(y * w + x) * 3 + c] = static_cast<uint8_t>(x * 3 + y * 2 + c * 40);
  const Image image = decode_image(stb_jpeg(w, h, 3, src, 95), "smooth.jpg");
  ASSERT_EQ(image.height, h);
  ASSERT_EQ(image.width, w);
  double total = 0;
  for (size_t i = 0; i < src.size(); ++i) total += std::abs(int(image.rgb[i]) - int(src[i]));
  EXPECT_LT(total / src.size(), 3.0);
}

TEST(ImageDecode, ExifOrientationIsApplied) {
  const int w = 3, h = 2;
  const std::vector<uint8_t> src = pattern(w, h, 3, 9);
  auto pixel = [](const Image& im, int y, int x) {
    const size_t at = (static_cast<size_t>(y) * im.width + x) * 3;
    return std::vector<uint8_t>(im.rgb.begin() + at, im.rgb.begin() + at + 3);
  };
  auto source = [&](int y, int x) {
    return std::vector<uint8_t>(&src[(y * w + x) * 3], &src[(y * w + x) * 3] + 3);
  };
  // 6 = "rotate 90 clockwise to view": the left column becomes the top row, read bottom to top.
  const Image rotated = decode_image(testing::with_png_exif(stb_png(w, h, 3, src), 6), "rot.png");
  ASSERT_EQ(rotated.height, w);
  ASSERT_EQ(rotated.width, h);
  EXPECT_EQ(pixel(rotated, 0, 0), source(h - 1, 0));
  EXPECT_EQ(pixel(rotated, 0, h - 1), source(0, 0));
  EXPECT_EQ(pixel(rotated, w - 1, 0), source(h - 1, w - 1));
  // Off on request; the JPEG path reads APP1.
  const Image as_stored = decode_image(testing::with_png_exif(stb_png(w, h, 3, src), 6), "rot.png",
                                       DecodeOptions{kMaxImagePixels, false});
  EXPECT_EQ(as_stored.height, h);
  const Image jpeg =
      decode_image(testing::with_jpeg_exif(stb_jpeg(16, 8, 3, pattern(16, 8, 3, 1), 90), 8), "r.jpg");
  EXPECT_EQ(jpeg.height, 16);
  EXPECT_EQ(jpeg.width, 8);
}

TEST(ImageDecodeErrors, MissingPathAndDirectory) {
  const l4::testing::TempDir tmp;
  expect_rejected(tmp.file("does_not_exist.png"), "not found");
  const std::string dir = tmp.file("a_directory.png");
  std::filesystem::create_directories(dir);
  expect_rejected(dir, "directory");
}

TEST(ImageDecodeErrors, ZeroSizeFileAndZeroSizeImage) {
  const l4::testing::TempDir tmp;
  expect_rejected(tmp.write("empty.png", ""), "empty");
  // A well-formed PNG whose IHDR says 0 x 5.
  expect_rejected(tmp.write("zero_width.png", make_png(0, 5, 0, 8, {})), "zero-size");
}

TEST(ImageDecodeErrors, WrongPngCrc) {
  const l4::testing::TempDir tmp;
  const std::vector<uint8_t> src = pattern(8, 8, 3, 1);
  std::string png = stb_png(8, 8, 3, src);
  // Flip one bit of the CRC of the first chunk after IHDR, and separately one bit of IDAT data.
  std::string bad_crc = png;
  bad_crc[8 + 25 + 8 + 1] ^= 0x01;  // inside the data of the chunk after IHDR (its CRC no longer matches)
  expect_rejected(tmp.write("bad_crc.png", bad_crc), "CRC mismatch");
  std::string bad_ihdr_crc = png;
  bad_ihdr_crc[8 + 8 + 13] ^= 0x40;  // the stored CRC of IHDR itself
  expect_rejected(tmp.write("bad_ihdr_crc.png", bad_ihdr_crc), "CRC mismatch in chunk 'IHDR'");
}

TEST(ImageDecodeErrors, CorruptAndTruncatedFiles) {
  const l4::testing::TempDir tmp;
  const std::vector<uint8_t> src = pattern(16, 16, 3, 2);
  const std::string png = stb_png(16, 16, 3, src);
  // Garbage compressed data with valid CRCs gets past the chunk check and must fail in the decoder.
  const std::string garbage(40, '\x5a');
  const std::string corrupt =
      make_png(16, 16, 2, 8, {}, {}).substr(0, 33) + png_chunk("IDAT", garbage) + png_chunk("IEND", "");
  expect_rejected(tmp.write("corrupt_idat.png", corrupt), "corrupt PNG");
  expect_rejected(tmp.write("truncated.png", png.substr(0, png.size() / 2)), "corrupt PNG");
  expect_rejected(tmp.write("signature_only.png", png.substr(0, 8)), "truncated");
  const std::string jpeg = stb_jpeg(16, 16, 3, src, 90);
  expect_rejected(tmp.write("truncated.jpg", jpeg.substr(0, 20)), "corrupt JPEG");
  expect_rejected(tmp.write("image.gif", "GIF89a\x01\x00\x01\x00"), "unsupported image format");
  expect_rejected(tmp.write("text.png", "just some text"), "unsupported image format");
}

TEST(ImageDecodeErrors, OversizedImage) {
  const std::vector<uint8_t> src = pattern(40, 30, 3, 3);
  try {
    decode_image(stb_png(40, 30, 3, src), "big.png", DecodeOptions{1000});
    ADD_FAILURE() << "expected an error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("big.png: image of 40x30 pixels exceeds"), std::string::npos)
        << e.what();
  }
}

// A 20000x20000 PNG (the header of a real one, the CRC recomputed) is too large, not corrupt.
TEST(ImageDecodeErrors, HugePngIsTooLargeNotCorrupt) {
  std::string png = stb_png(2, 2, 3, pattern(2, 2, 3, 3));
  auto put_be32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  };
  put_be32(16, 20000);                           // IHDR width
  put_be32(20, 20000);                           // IHDR height
  put_be32(29, l4::crc32(png.data() + 12, 17));  // CRC of "IHDR" + its 13 bytes
  try {
    decode_image(png, "huge.png", DecodeOptions{});
    ADD_FAILURE() << "expected an error";
  } catch (const l4::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("huge.png: image of 20000x20000 pixels exceeds"), std::string::npos) << what;
    EXPECT_EQ(what.find("corrupt"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace l4::vision
