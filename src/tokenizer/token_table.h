// Open-addressing hash table from token bytes to id, keyed by views into the vocabulary's own strings:
// the whole-piece lookup that most pieces take, without allocation or modulo arithmetic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace l4::tokenizer {

class TokenTable {
 public:
  // `tokens` must outlive the table and not move (the table keeps views into it).
  void build(const std::vector<std::string>& tokens, const std::vector<bool>& include) {
    size_t n = 0;
    for (size_t i = 0; i < tokens.size(); ++i) n += include[i];
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    tokens_ = &tokens;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (!include[i]) continue;
      const uint64_t h = hash(tokens[i]);
      size_t s = h & mask_;
      while (slots_[s].id >= 0 && tokens[slots_[s].id] != tokens[i]) s = (s + 1) & mask_;
      slots_[s] = {h, static_cast<int32_t>(i)};  // a repeated token: the later id wins
    }
  }
  // Id of `bytes`, or -1.
  int32_t find(std::string_view bytes) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash(bytes);
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      const Slot& slot = slots_[s];
      if (slot.id < 0) return -1;
      if (slot.hash == h && (*tokens_)[slot.id] == bytes) return slot.id;
    }
  }

 private:
  static uint64_t hash(std::string_view s) {  // FNV-1a, then a final mix for the low bits
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
    h ^= h >> 32;
    return h * 0x9e3779b97f4a7c15ULL >> 7 ^ h;
  }
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  const std::vector<std::string>* tokens_ = nullptr;
};

}  // namespace l4::tokenizer
