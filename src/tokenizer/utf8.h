// UTF-8 helpers with the exact semantics the reference tokenizers rely on: Python's str.isspace (Meta's
// input slicing, Jinja's trim), and lossy decoding that replaces each maximal invalid subpart with U+FFFD
// (what both Rust's String::from_utf8_lossy and Python's bytes.decode(errors="replace") do).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace l4::tokenizer {

// Length of the valid UTF-8 sequence starting at text[pos], or 0 when the bytes there are not one.
size_t utf8_sequence_length(std::string_view text, size_t pos);

bool is_valid_utf8(std::string_view text);

// `text` with every maximal invalid subpart replaced by U+FFFD (EF BF BD).
std::string utf8_lossy(std::string_view text);

// Decodes the code point of a valid sequence of length `len` at text[pos].
char32_t utf8_code_point(std::string_view text, size_t pos, size_t len);

// Python's str.isspace for one code point.
bool python_isspace(char32_t cp);

// Python's str.strip() (removes leading/trailing str.isspace characters) on valid UTF-8.
std::string_view python_strip(std::string_view text);

// Meta's Tokenizer.encode slicing on valid UTF-8: pieces of at most `max_chars` code points, each cut so
// that no run of consecutive whitespace or non-whitespace code points exceeds `max_run`.
std::vector<std::string_view> meta_slices(std::string_view text, size_t max_chars = 400000,
                                          size_t max_run = 25000);

}  // namespace l4::tokenizer
