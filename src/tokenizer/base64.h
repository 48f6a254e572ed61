// Strict standard base64 (RFC 4648 alphabet, '=' padding) for tiktoken rank files.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace l4::tokenizer {

// Decoded bytes, or nullopt when `text` is not valid padded base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace l4::tokenizer
