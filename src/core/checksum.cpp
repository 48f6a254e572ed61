#include "core/checksum.h"

#include <zlib.h>

#include <algorithm>
#include <array>

namespace l4 {

// zlib's crc32 is CRC-32/ISO-HDLC (reflected 0xEDB88320, initial and final xor 0xFFFFFFFF), the CRC the
// checkpoints have always carried, computed with its sliced/vectorised kernels (about 9x the byte-at-a-time
// table). Its length argument is 32-bit: feed it in pieces.
uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  constexpr size_t kPiece = size_t{1} << 30;
  const auto* bytes = static_cast<const Bytef*>(data);
  uLong value = crc;
  while (size > 0) {
    const size_t n = std::min(size, kPiece);
    value = ::crc32(value, bytes, static_cast<uInt>(n));
    bytes += n;
    size -= n;
  }
  return static_cast<uint32_t>(value);
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  // Byte-at-a-time table for the reflected Castagnoli polynomial (small TensorBoard records only).
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* bytes = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace l4
