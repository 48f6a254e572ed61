#include "vision/exif_orientation.h"

#include <utility>

#include "vision/png_check.h"

namespace l4::vision {
namespace {

uint32_t read_u16(std::string_view b, size_t at, bool little) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return little ? (p[0] | (p[1] << 8)) : ((p[0] << 8) | p[1]);
}

uint32_t read_u32(std::string_view b, size_t at, bool little) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return little ? (uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24))
                : ((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]});
}

// Orientation from a TIFF structure (the payload of an EXIF block): IFD0, tag 0x0112, SHORT.
int tiff_orientation(std::string_view tiff) {
  if (tiff.size() < 8) return 1;
  bool little;
  if (tiff.substr(0, 2) == "II") {
    little = true;
  } else if (tiff.substr(0, 2) == "MM") {
    little = false;
  } else {
    return 1;
  }
  if (read_u16(tiff, 2, little) != 42) return 1;
  const uint64_t ifd = read_u32(tiff, 4, little);
  if (ifd + 2 > tiff.size()) return 1;
  const uint32_t entries = read_u16(tiff, ifd, little);
  for (uint32_t i = 0; i < entries; ++i) {
    const uint64_t entry = ifd + 2 + 12ull * i;
    if (entry + 12 > tiff.size()) return 1;
    if (read_u16(tiff, entry, little) != 0x0112) continue;
    if (read_u16(tiff, entry + 2, little) != 3) return 1;  // SHORT
    const uint32_t value = read_u16(tiff, entry + 8, little);
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

int jpeg_orientation(std::string_view b) {
  size_t at = 2;  // after SOI
  while (at + 4 <= b.size()) {
    if (static_cast<unsigned char>(b[at]) != 0xFF) return 1;
    const auto marker = static_cast<unsigned char>(b[at + 1]);
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // start of scan / end of image: no EXIF before it
    const uint32_t length = read_u16(b, at + 2, false);
    if (length < 2 || at + 2 + length > b.size()) return 1;
    const std::string_view payload = b.substr(at + 4, length - 2);
    if (marker == 0xE1 && payload.substr(0, 6) == std::string_view("Exif\0\0", 6)) {
      return tiff_orientation(payload.substr(6));
    }
    at += 2 + length;
  }
  return 1;
}

int png_orientation(std::string_view b) {
  size_t at = 8;
  while (at + 12 <= b.size()) {
    const uint64_t length = read_u32(b, at, false);
    if (length > b.size() - at - 12) return 1;
    const std::string_view type = b.substr(at + 4, 4);
    if (type == "eXIf") return tiff_orientation(b.substr(at + 8, length));
    if (type == "IDAT" || type == "IEND") return 1;  // PIL reads eXIf only before the image data
    at += 12 + length;
  }
  return 1;
}

}  // namespace

int exif_orientation(std::string_view bytes) {
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8) {
    return jpeg_orientation(bytes);
  }
  if (has_png_signature(bytes)) return png_orientation(bytes);
  return 1;
}

void apply_exif_orientation(Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return;
  const int64_t h = image.height, w = image.width;
  const bool swap = orientation >= 5;
  const int64_t out_h = swap ? w : h, out_w = swap ? h : w;
  std::vector<uint8_t> out(image.rgb.size());
  for (int64_t y = 0; y < out_h; ++y) {
    for (int64_t x = 0; x < out_w; ++x) {
      int64_t sy = 0, sx = 0;  // source pixel of output (y, x)
      switch (orientation) {
        case 2:  // mirror left-right
          sy = y, sx = w - 1 - x;
          break;
        case 3:  // rotate 180
          sy = h - 1 - y, sx = w - 1 - x;
          break;
        case 4:  // mirror top-bottom
          sy = h - 1 - y, sx = x;
          break;
        case 5:  // transpose
          sy = x, sx = y;
          break;
        case 6:  // rotate 90 clockwise
          sy = h - 1 - x, sx = y;
          break;
        case 7:  // transverse
          sy = h - 1 - x, sx = w - 1 - y;
          break;
        case 8:  // rotate 90 counter-clockwise
          sy = x, sx = w - 1 - y;
          break;
      }
      const uint8_t* src = &image.rgb[static_cast<size_t>((sy * w + sx) * 3)];
      uint8_t* dst = &out[static_cast<size_t>((y * out_w + x) * 3)];
      dst[0] = src[0];
      dst[1] = src[1];
      dst[2] = src[2];
    }
  }
  image.rgb = std::move(out);
  image.height = out_h;
  image.width = out_w;
}

}  // namespace l4::vision
