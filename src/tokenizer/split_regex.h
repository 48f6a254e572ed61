// Pre-tokenisation: cuts text into pieces with the tokenizer's split regex, using PCRE2 in UTF mode with
// Unicode properties (JIT-compiled when available). `\s`/`\S` are rewritten to Unicode White_Space so
// PCRE2 agrees with the Rust regex engines of tiktoken and HF tokenizers (PCRE2's \s also matches U+180E).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace l4::tokenizer {

class SplitRegex {
 public:
  // `source` names the file the pattern came from, for error messages. keep_gaps: text between matches
  // becomes pieces too (HF Split "isolated"); otherwise it is dropped (tiktoken).
  SplitRegex(const std::string& pattern, bool keep_gaps, const std::string& source);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Appends [begin, end) byte offsets of the pieces of `text` (valid UTF-8) to `pieces`.
  void split(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& pieces) const;

  const std::string& pattern() const { return pattern_; }
  bool jit() const { return jit_; }

 private:
  std::string pattern_;
  std::string source_;
  bool keep_gaps_;
  bool jit_ = false;
  void* code_ = nullptr;  // pcre2_code_8*
};

// The pattern with \s and \S replaced by explicit Unicode White_Space classes (exposed for tests).
std::string rewrite_whitespace_classes(const std::string& pattern);

}  // namespace l4::tokenizer
