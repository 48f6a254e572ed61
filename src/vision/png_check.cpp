#include "vision/png_check.h"

#include "core/checksum.h"
#include "core/error.h"

namespace l4::vision {
namespace {

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

uint32_t read_be32(std::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool is_chunk_type(std::string_view type) {
  for (char c : type) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

std::string printable(std::string_view type) {
  std::string out;
  for (unsigned char c : type)
    out += (c >= 32 && c < 127) ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  return out;
}

}  // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  return l4::crc32(data.data(), data.size(), crc);
}

bool has_png_signature(std::string_view bytes) {
  return bytes.substr(0, kPngSignature.size()) == kPngSignature;
}

void check_png_chunks(std::string_view bytes, const std::string& name) {
  L4_CHECK(has_png_signature(bytes), "{}: not a PNG file (bad signature)", name);
  size_t offset = kPngSignature.size();
  bool first = true;
  while (true) {
    L4_CHECK(bytes.size() - offset >= 12, "{}: corrupt PNG: truncated at byte {} (no IEND chunk)", name,
             offset);
    const uint64_t length = read_be32(bytes, offset);
    const std::string_view type = bytes.substr(offset + 4, 4);
    L4_CHECK(is_chunk_type(type), "{}: corrupt PNG: invalid chunk type '{}' at byte {}", name,
             printable(type), offset);
    L4_CHECK(length <= 0x7FFFFFFFu && length <= bytes.size() - offset - 12,
             "{}: corrupt PNG: chunk '{}' at byte {} claims {} bytes, beyond the end of the file", name, type,
             offset, length);
    if (first) {
      L4_CHECK(type == "IHDR" && length == 13, "{}: corrupt PNG: the first chunk must be a 13-byte IHDR",
               name);
      first = false;
    }
    const uint32_t stored = read_be32(bytes, offset + 8 + length);
    const uint32_t actual = crc32(bytes.substr(offset + 4, 4 + length));
    L4_CHECK(stored == actual,
             "{}: corrupt PNG: CRC mismatch in chunk '{}' at byte {} (stored {:08x}, computed {:08x})", name,
             type, offset, stored, actual);
    offset += 12 + length;
    if (type == "IEND") return;
  }
}

}  // namespace l4::vision
