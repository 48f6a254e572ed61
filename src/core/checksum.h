// Checksums for file integrity: CRC-32 (CRC-32/ISO-HDLC as zlib, PNG and Python's zlib.crc32 compute it;
// checkpoint shards and PNG chunks) and CRC-32C (Castagnoli, for TensorBoard's TFRecord framing).
// Both chain: crc32(b, n, crc32(a, m)) == crc32 of a followed by b.
#pragma once

#include <cstddef>
#include <cstdint>

namespace l4 {

uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace l4
