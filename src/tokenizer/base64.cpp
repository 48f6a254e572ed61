#include "tokenizer/base64.h"

#include <array>
#include <cstddef>
#include <cstdint>

namespace l4::tokenizer {

std::optional<std::string> base64_decode(std::string_view text) {
  static const std::array<int, 256> kValue = [] {
    std::array<int, 256> v{};
    v.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(alphabet[i])] = i;
    return v;
  }();
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  if (text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    for (int k = 0; k < 4; ++k) {
      const bool pad_slot = last && k >= 4 - static_cast<int>(padding);
      v[k] = pad_slot ? 0 : kValue[static_cast<unsigned char>(text[i + k])];
      if (v[k] < 0) return std::nullopt;
    }
    const uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (!(last && padding == 2)) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (!(last && padding >= 1)) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

}  // namespace l4::tokenizer
