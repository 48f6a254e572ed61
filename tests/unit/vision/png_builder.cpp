#include "png_builder.h"

#include <random>

#include "vision/png_check.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb_image_write.h>

namespace l4::vision::testing {
namespace {

void append(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string png_chunk(const std::string& type, const std::string& data, bool corrupt_crc) {
  uint32_t crc = crc32(type + data);
  if (corrupt_crc) crc ^= 0x00010000u;
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(crc);
}

std::string make_png(uint32_t width, uint32_t height, int color_type, int bit_depth,
                     const std::vector<std::string>& rows, const std::vector<std::string>& extra) {
  std::string ihdr = be32(width) + be32(height);
  ihdr += static_cast<char>(bit_depth);
  ihdr += static_cast<char>(color_type);
  ihdr += std::string(3, '\0');  // deflate, adaptive filtering, no interlace
  std::string raw;
  for (const std::string& row : rows) raw += '\0' + row;
  int zlen = 0;
  unsigned char* z = stbi_zlib_compress(reinterpret_cast<unsigned char*>(raw.data()),
                                        static_cast<int>(raw.size()), &zlen, 8);
  std::string idat(reinterpret_cast<const char*>(z), static_cast<size_t>(zlen));
  STBIW_FREE(z);
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += png_chunk("IHDR", ihdr);
  for (const std::string& chunk : extra) png += chunk;
  png += png_chunk("IDAT", idat);
  png += png_chunk("IEND", "");
  return png;
}

std::string stb_png(int width, int height, int channels, const std::vector<uint8_t>& pixels) {
  std::string out;
  stbi_write_png_to_func(append, &out, width, height, channels, pixels.data(), width * channels);
  return out;
}

std::string stb_jpeg(int width, int height, int channels, const std::vector<uint8_t>& pixels, int quality) {
  std::string out;
  stbi_write_jpg_to_func(append, &out, width, height, channels, pixels.data(), quality);
  return out;
}

std::string exif_tiff(int orientation) {
  std::string tiff("MM\0*\0\0\0\x08", 8);              // big-endian, IFD0 at offset 8
  tiff += std::string("\0\x01", 2);                    // one entry
  tiff += std::string("\x01\x12\0\x03\0\0\0\x01", 8);  // tag 0x0112, SHORT, count 1
  tiff += {'\0', static_cast<char>(orientation), '\0', '\0'};
  tiff += std::string(4, '\0');  // no next IFD
  return tiff;
}

std::string with_jpeg_exif(const std::string& jpeg, int orientation) {
  const std::string payload = std::string("Exif\0\0", 6) + exif_tiff(orientation);
  const auto length = static_cast<uint32_t>(payload.size() + 2);
  std::string segment = {'\xFF', '\xE1', static_cast<char>(length >> 8), static_cast<char>(length)};
  return jpeg.substr(0, 2) + segment + payload + jpeg.substr(2);
}

std::string with_png_exif(const std::string& png, int orientation) {
  return png.substr(0, 33) + png_chunk("eXIf", exif_tiff(orientation)) + png.substr(33);
}

void fix_png_crcs(std::string& png) {
  size_t offset = 8;
  while (offset + 12 <= png.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(png.data() + offset);
    const uint64_t length = (uint64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    if (length > png.size() - offset - 12) return;
    const std::string crc = be32(crc32(std::string_view(png).substr(offset + 4, 4 + length)));
    png.replace(offset + 8 + length, 4, crc);
    offset += 12 + length;
  }
}

std::vector<uint8_t> pattern(int width, int height, int channels, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(static_cast<size_t>(width) * height * channels);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c)
        out[(static_cast<size_t>(y) * width + x) * channels + c] =
            static_cast<uint8_t>((x * 7 + y * 3 + c * 50) % 256 / 2 + rng() % 64);
  return out;
}

}  // namespace l4::vision::testing
