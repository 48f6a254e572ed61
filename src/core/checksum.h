// Checksums for file integrity: CRC-32 (zlib/PNG polynomial, for checkpoint shards) and CRC-32C
// (Castagnoli, for TensorBoard's TFRecord framing).
#pragma once

#include <cstddef>
#include <cstdint>

namespace l4 {

uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace l4
