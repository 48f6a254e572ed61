// Image files -> 8-bit RGB pixels. PNG (any colour type and bit depth, interlaced or not) and baseline or
// progressive JPEG are decoded with stb_image. Conversion to RGB follows PIL's Image.convert("RGB"), which
// is what Hugging Face processors see: grey is replicated, alpha is dropped (not composited), palettes are
// expanded, 16-bit samples keep their high byte. The EXIF orientation tag is applied (the pixels come out
// upright), as transformers' load_image() does with PIL.ImageOps.exif_transpose.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace l4::vision {

struct Image {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> rgb;  // row-major, height x width x 3
};

// Largest accepted image, in pixels (PIL's decompression-bomb limit).
constexpr int64_t kMaxImagePixels = 178956970;

struct DecodeOptions {
  int64_t max_pixels = kMaxImagePixels;
  bool apply_exif_orientation = true;
};

// Decodes an in-memory PNG or JPEG. `name` (usually the path) is used in error messages. Throws l4::Error
// for unsupported formats, corrupt data (including PNG CRC errors), zero-size images and images of more
// than `max_pixels` pixels.
Image decode_image(std::string_view bytes, const std::string& name, const DecodeOptions& options = {});

// Reads and decodes a file; a missing or unreadable file is an l4::Error naming the path.
Image load_image(const std::string& path, const DecodeOptions& options = {});

}  // namespace l4::vision
