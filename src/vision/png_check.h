// Structural check of a PNG file before it is decoded: signature, chunk bounds, IHDR first, a final IEND
// and the CRC of every chunk. stb_image does not verify CRCs, so without this a damaged PNG could decode
// to silently wrong pixels.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace l4::vision {

// CRC-32 (ISO 3309 / PNG / zlib polynomial) of `data`, continuing from `crc` (0 to start).
uint32_t crc32(std::string_view data, uint32_t crc = 0);

bool has_png_signature(std::string_view bytes);

// Throws l4::Error naming `name` (the file) and the offending chunk when the PNG is malformed.
void check_png_chunks(std::string_view bytes, const std::string& name);

}  // namespace l4::vision
