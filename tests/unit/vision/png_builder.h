// Test helpers that write images: hand-built PNG chunks (any colour type, bad CRCs on purpose) and stb's
// PNG/JPEG encoders.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace l4::vision::testing {

// length + type + data + CRC (a wrong CRC when `corrupt_crc`).
std::string png_chunk(const std::string& type, const std::string& data, bool corrupt_crc = false);
std::string be32(uint32_t value);

// A PNG with the given IHDR fields and unfiltered 8-bit-or-less rows (each row gets filter byte 0).
// `extra` chunks go between IHDR and IDAT (PLTE, tRNS, ...).
std::string make_png(uint32_t width, uint32_t height, int color_type, int bit_depth,
                     const std::vector<std::string>& rows, const std::vector<std::string>& extra = {});

// stb_image_write encoders: pixels are height x width x channels.
std::string stb_png(int width, int height, int channels, const std::vector<uint8_t>& pixels);
std::string stb_jpeg(int width, int height, int channels, const std::vector<uint8_t>& pixels, int quality);

// An EXIF (TIFF, big-endian) block holding only the orientation tag, and files carrying it: a JPEG APP1
// segment right after SOI, or a PNG eXIf chunk right after IHDR.
std::string exif_tiff(int orientation);
std::string with_jpeg_exif(const std::string& jpeg, int orientation);
std::string with_png_exif(const std::string& png, int orientation);

// Recomputes the CRC of every chunk that fits in the file (for fuzzing past the CRC check).
void fix_png_crcs(std::string& png);

// A deterministic test pattern.
std::vector<uint8_t> pattern(int width, int height, int channels, uint32_t seed);

}  // namespace l4::vision::testing
