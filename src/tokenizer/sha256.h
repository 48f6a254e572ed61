// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex. Used to pin the tokenizer in dataset metadata.
#pragma once

#include <string>
#include <string_view>

namespace l4::tokenizer {

std::string sha256_hex(std::string_view data);

}  // namespace l4::tokenizer
