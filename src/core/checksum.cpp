#include "core/checksum.h"

#include <array>

namespace l4 {
namespace {

// Byte-at-a-time table for a reflected CRC polynomial.
std::array<uint32_t, 256> make_table(uint32_t polynomial) {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? polynomial ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t run(const std::array<uint32_t, 256>& table, const void* data, size_t size, uint32_t crc) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static const auto table = make_table(0xEDB88320u);
  return run(table, data, size, crc);
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const auto table = make_table(0x82F63B78u);
  return run(table, data, size, crc);
}

}  // namespace l4
