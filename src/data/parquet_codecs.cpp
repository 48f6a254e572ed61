#include "data/parquet_codecs.h"

#include <zlib.h>

#include <cstring>

#include "core/error.h"

#ifdef L4_HAVE_ZSTD
#include <zstd.h>
#endif

namespace l4::data {

const char* parquet_codec_name(int codec) {
  switch (codec) {
    case kUncompressed:
      return "UNCOMPRESSED";
    case kSnappy:
      return "SNAPPY";
    case kGzip:
      return "GZIP";
    case kLzo:
      return "LZO";
    case kBrotli:
      return "BROTLI";
    case kLz4:
      return "LZ4";
    case kZstd:
      return "ZSTD";
    case kLz4Raw:
      return "LZ4_RAW";
  }
  return "unknown";
}

bool parquet_codec_supported(int codec) {
#ifdef L4_HAVE_ZSTD
  if (codec == kZstd) return true;
#endif
  return codec == kUncompressed || codec == kSnappy || codec == kGzip;
}

std::vector<uint8_t> snappy_decompress(const uint8_t* src, size_t n, size_t expected,
                                       const std::string& what) {
  size_t pos = 0;
  const auto need = [&](size_t k) { L4_CHECK(k <= n - pos, "{}: truncated Snappy data", what); };
  uint64_t length = 0;
  for (int shift = 0;; shift += 7) {
    L4_CHECK(shift < 35, "{}: bad Snappy length", what);
    need(1);
    const uint8_t b = src[pos++];
    length |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) break;
  }
  L4_CHECK(length == expected, "{}: Snappy data holds {} bytes, the page header says {}", what, length,
           expected);
  std::vector<uint8_t> out;
  out.reserve(expected);
  while (pos < n) {
    const uint8_t tag = src[pos++];
    if ((tag & 3) == 0) {  // literal
      size_t len = tag >> 2;
      if (len >= 60) {
        const size_t bytes = len - 59;
        need(bytes);
        len = 0;
        for (size_t k = 0; k < bytes; ++k) len |= static_cast<size_t>(src[pos + k]) << (8 * k);
        pos += bytes;
      }
      len += 1;
      need(len);
      L4_CHECK(len <= expected - out.size(), "{}: Snappy data longer than stated", what);
      out.insert(out.end(), src + pos, src + pos + len);
      pos += len;
      continue;
    }
    size_t len = 0, offset = 0;
    if ((tag & 3) == 1) {
      need(1);
      len = 4 + ((tag >> 2) & 7);
      offset = (static_cast<size_t>(tag >> 5) << 8) | src[pos++];
    } else {
      const size_t bytes = (tag & 3) == 2 ? 2 : 4;
      need(bytes);
      len = (tag >> 2) + 1;
      for (size_t k = 0; k < bytes; ++k) offset |= static_cast<size_t>(src[pos + k]) << (8 * k);
      pos += bytes;
    }
    L4_CHECK(offset >= 1 && offset <= out.size(), "{}: Snappy copy offset {} outside the {} bytes written",
             what, offset, out.size());
    L4_CHECK(len <= expected - out.size(), "{}: Snappy data longer than stated", what);
    const size_t from = out.size() - offset;
    for (size_t k = 0; k < len; ++k) out.push_back(out[from + k]);  // copies may overlap their own output
  }
  L4_CHECK(out.size() == expected, "{}: Snappy data ends after {} of {} bytes", what, out.size(), expected);
  return out;
}

namespace {

std::vector<uint8_t> gzip_decompress(const uint8_t* src, size_t n, size_t expected, const std::string& what) {
  L4_CHECK(n <= UINT32_MAX && expected <= UINT32_MAX, "{}: gzip page too large", what);
  std::vector<uint8_t> out(expected);
  z_stream z{};
  L4_CHECK(inflateInit2(&z, 15 + 32) == Z_OK, "{}: zlib initialisation failed", what);  // gzip or zlib header
  z.next_in = const_cast<Bytef*>(src);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(expected);
  const int rc = inflate(&z, Z_FINISH);
  const size_t produced = expected - z.avail_out;
  inflateEnd(&z);
  L4_CHECK(rc == Z_STREAM_END && produced == expected, "{}: corrupt gzip data ({} of {} bytes)", what,
           produced, expected);
  return out;
}

}  // namespace

std::vector<uint8_t> parquet_decompress(int codec, const uint8_t* src, size_t n, size_t expected,
                                        const std::string& what) {
  switch (codec) {
    case kUncompressed:
      L4_CHECK(n == expected, "{}: uncompressed page of {} bytes, the header says {}", what, n, expected);
      return std::vector<uint8_t>(src, src + n);
    case kSnappy:
      return snappy_decompress(src, n, expected, what);
    case kGzip:
      return gzip_decompress(src, n, expected, what);
#ifdef L4_HAVE_ZSTD
    case kZstd: {
      std::vector<uint8_t> out(expected);
      const size_t got = ZSTD_decompress(out.data(), expected, src, n);
      L4_CHECK(!ZSTD_isError(got) && got == expected, "{}: corrupt Zstandard data{}", what,
               ZSTD_isError(got) ? std::string(": ") + ZSTD_getErrorName(got) : std::string());
      return out;
    }
#endif
    default:
      break;
  }
  L4_FAIL(
      "{}: {} compression is not supported by this build (supported: UNCOMPRESSED, SNAPPY, GZIP{}); rewrite "
      "the file with: python3 -c \"import pyarrow.parquet as pq, sys; "
      "pq.write_table(pq.read_table(sys.argv[1]), "
      "sys.argv[2], compression='snappy')\" IN.parquet OUT.parquet",
      what, parquet_codec_name(codec), parquet_codec_supported(kZstd) ? ", ZSTD" : "");
}

}  // namespace l4::data
