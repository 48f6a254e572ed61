#include "vision/image_decode.h"

#include <climits>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "vision/exif_orientation.h"
#include "vision/png_check.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_FAILURE_USERMSG
#include <stb_image.h>

namespace l4::vision {
namespace {

bool has_jpeg_signature(std::string_view bytes) {
  return bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
         static_cast<unsigned char>(bytes[1]) == 0xD8 && static_cast<unsigned char>(bytes[2]) == 0xFF;
}

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown error";
}

}  // namespace

Image decode_image(std::string_view bytes, const std::string& name, const DecodeOptions& options) {
  L4_CHECK(!bytes.empty(), "{}: empty image file", name);
  const bool png = has_png_signature(bytes);
  L4_CHECK(png || has_jpeg_signature(bytes), "{}: unsupported image format (expected PNG or JPEG)", name);
  L4_CHECK(bytes.size() <= static_cast<size_t>(INT_MAX), "{}: image file too large ({} bytes)", name,
           bytes.size());
  if (png) {
    check_png_chunks(bytes, name);
    // IHDR starts at byte 16 (the check above guarantees it is there).
    const auto* ihdr = reinterpret_cast<const unsigned char*>(bytes.data() + 16);
    const uint32_t png_width =
        (uint32_t{ihdr[0]} << 24) | (uint32_t{ihdr[1]} << 16) | (uint32_t{ihdr[2]} << 8) | ihdr[3];
    const uint32_t png_height =
        (uint32_t{ihdr[4]} << 24) | (uint32_t{ihdr[5]} << 16) | (uint32_t{ihdr[6]} << 8) | ihdr[7];
    L4_CHECK(png_width > 0 && png_height > 0, "{}: zero-size image ({}x{})", name, png_width, png_height);
    // Before the decoder: stb refuses very large images with a bare "too large", read as corruption.
    L4_CHECK(uint64_t{png_width} * png_height <= static_cast<uint64_t>(options.max_pixels),
             "{}: image of {}x{} pixels exceeds the limit of {} pixels", name, png_width, png_height,
             options.max_pixels);
  }

  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels = 0;
  L4_CHECK(stbi_info_from_memory(data, length, &width, &height, &channels), "{}: corrupt {} image: {}", name,
           png ? "PNG" : "JPEG", stb_reason());
  L4_CHECK(width > 0 && height > 0, "{}: zero-size image ({}x{})", name, width, height);
  L4_CHECK(int64_t{width} * height <= options.max_pixels,
           "{}: image of {}x{} pixels exceeds the limit of {} pixels", name, width, height,
           options.max_pixels);

  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(data, length, &width, &height, &channels, 3), stbi_image_free);
  L4_CHECK(pixels != nullptr, "{}: corrupt {} image: {}", name, png ? "PNG" : "JPEG", stb_reason());
  L4_CHECK(width > 0 && height > 0, "{}: zero-size image ({}x{})", name, width, height);

  Image image;
  image.height = height;
  image.width = width;
  image.rgb.resize(static_cast<size_t>(width) * height * 3);
  std::memcpy(image.rgb.data(), pixels.get(), image.rgb.size());
  if (options.apply_exif_orientation) apply_exif_orientation(image, exif_orientation(bytes));
  return image;
}

Image load_image(const std::string& path, const DecodeOptions& options) {
  L4_CHECK(file_exists(path), "{}: image file not found", path);
  L4_CHECK(!is_directory(path), "{}: is a directory, expected an image file", path);
  return decode_image(read_file(path), path, options);
}

}  // namespace l4::vision
