// What a tokenizer file defines, independent of its format: token bytes per id, the merge rule, the
// split pattern and the added (special) tokens. Filled by the two loaders, used by Tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace l4::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = true;  // non-special added tokens are matched even without parse_special (HF rule)
};

struct Vocab {
  enum class Kind { kTiktoken, kHfBpe };
  Kind kind = Kind::kTiktoken;
  std::string source;   // the file, for messages
  std::string pattern;  // split regex
  bool keep_gaps = false;     // HF Split "isolated" keeps unmatched text as pieces
  bool meta_slicing = false;  // Meta's 400k / 25k input slicing (tiktoken format)
  bool ignore_merges = true;  // a piece that is itself a token is emitted whole (tiktoken always does)
  int32_t unk_id = -1;        // HF: id for bytes missing from the vocab; -1 drops them
  std::vector<std::string> bytes_of;  // id -> token bytes (added tokens: their text); holes are empty
  std::vector<bool> is_base;          // id -> a BPE token (not added)
  int32_t n_base = 0;                 // number of BPE tokens
  // HF merges: (left id << 32 | right id) -> (rank, merged id). Empty for tiktoken (ranks decide).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::vector<AddedToken> added;
};

// tokenizer.model: "base64 rank" per line; Llama 4's 2048 special tokens follow at n_base + i.
Vocab load_tiktoken_vocab(const std::string& path, const std::string& contents);
// tokenizer.json (HF tokenizers, byte-level BPE).
Vocab load_hf_vocab(const std::string& path, const std::string& contents);

// Llama 4 special-token names in id order (2048, Meta's layout).
const std::vector<std::string>& llama4_special_token_names();

}  // namespace l4::tokenizer
