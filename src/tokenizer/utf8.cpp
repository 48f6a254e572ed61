#include "tokenizer/utf8.h"

namespace l4::tokenizer {

size_t utf8_sequence_length(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (pos + 1 >= text.size() || byte(pos + 1) < lo || byte(pos + 1) > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (pos + i >= text.size() || (byte(pos + i) & 0xC0) != 0x80) return 0;
  }
  return len;
}

bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t len = utf8_sequence_length(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::string utf8_lossy(std::string_view text) {
  if (is_valid_utf8(text)) return std::string(text);
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_sequence_length(text, pos);
    if (len > 0) {
      out.append(text.substr(pos, len));
      pos += len;
      continue;
    }
    // Maximal subpart: the lead byte plus the continuation bytes that were still valid for it.
    const unsigned char b0 = static_cast<unsigned char>(text[pos]);
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
    if (b0 >= 0xE0 && b0 <= 0xEF) need = 2, lo = (b0 == 0xE0 ? 0xA0 : 0x80), hi = (b0 == 0xED ? 0x9F : 0xBF);
    if (b0 >= 0xF0 && b0 <= 0xF4) need = 3, lo = (b0 == 0xF0 ? 0x90 : 0x80), hi = (b0 == 0xF4 ? 0x8F : 0xBF);
    size_t consumed = 1;
    for (size_t i = 0; i < need && pos + consumed < text.size(); ++i) {
      const unsigned char b = static_cast<unsigned char>(text[pos + consumed]);
      if (i == 0 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
      ++consumed;
    }
    out.append(kReplacement, 3);
    pos += consumed;
  }
  return out;
}

char32_t utf8_code_point(std::string_view text, size_t pos, size_t len) {
  const auto b = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[pos + i])); };
  switch (len) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

bool python_isspace(char32_t cp) {
  // CPython's _PyUnicode_IsWhitespace: bidirectional class WS, B or S, or category Zs.
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

namespace {
size_t code_point_length(std::string_view text, size_t pos) {
  const size_t len = utf8_sequence_length(text, pos);
  return len == 0 ? 1 : len;  // callers pass valid UTF-8; stay in bounds regardless
}
}  // namespace

std::string_view python_strip(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t len = code_point_length(text, begin);
    if (!python_isspace(utf8_code_point(text, begin, len))) break;
    begin += len;
  }
  size_t end = begin;
  for (size_t pos = begin; pos < text.size();) {
    const size_t len = code_point_length(text, pos);
    if (!python_isspace(utf8_code_point(text, pos, len))) end = pos + len;
    pos += len;
  }
  return text.substr(begin, end - begin);
}

std::vector<std::string_view> meta_slices(std::string_view text, size_t max_chars, size_t max_run) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    // One chunk of at most max_chars code points, then Meta's _split_whitespaces_or_nonwhitespaces.
    size_t slice_start = pos, run = 0, chars = 0;
    bool run_is_space = false;
    for (; pos < text.size() && chars < max_chars; ++chars) {
      const unsigned char b = static_cast<unsigned char>(text[pos]);
      const size_t len = b < 0x80 ? 1 : code_point_length(text, pos);
      const bool space = python_isspace(b < 0x80 ? b : utf8_code_point(text, pos, len));
      if (chars == 0) run_is_space = space;
      if (space != run_is_space) {
        run = 1;
        run_is_space = space;
      } else if (++run > max_run) {
        out.push_back(text.substr(slice_start, pos - slice_start));
        slice_start = pos;
        run = 1;
      }
      pos += len;
    }
    out.push_back(text.substr(slice_start, pos - slice_start));
  }
  return out;
}

}  // namespace l4::tokenizer
