// Page decompression for the Parquet reader: Snappy (raw format, decoded here), gzip (zlib) and Zstandard
// (libzstd, when the build found it). The output must have exactly the size the page header states.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace l4::data {

enum ParquetCodec : int {
  kUncompressed = 0,
  kSnappy = 1,
  kGzip = 2,
  kLzo = 3,
  kBrotli = 4,
  kLz4 = 5,
  kZstd = 6,
  kLz4Raw = 7
};

const char* parquet_codec_name(int codec);
bool parquet_codec_supported(int codec);

// Decompresses n bytes into exactly `expected` bytes; `what` prefixes errors.
std::vector<uint8_t> parquet_decompress(int codec, const uint8_t* src, size_t n, size_t expected,
                                        const std::string& what);

// The raw Snappy format (no framing), bounds-checked: every copy stays inside the output written so far.
std::vector<uint8_t> snappy_decompress(const uint8_t* src, size_t n, size_t expected,
                                       const std::string& what);

}  // namespace l4::data
