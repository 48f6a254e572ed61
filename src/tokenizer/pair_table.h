// Open-addressing hash table from a token pair (left id, right id) to its merge (rank, merged id): the
// hot lookup of BPE, kept flat so a probe is one or two cache lines.
#pragma once

#include <cstdint>
#include <vector>

#include "tokenizer/bpe_merge.h"

namespace l4::tokenizer {

class PairTable {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
  }
  // Inserts or overwrites.
  void set(int32_t left, int32_t right, PairMerge merge) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    Slot& s = find_slot(key(left, right));
    if (s.key == kEmpty) ++size_;
    s = {key(left, right), merge.rank, merge.id};
  }
  PairMerge get(int32_t left, int32_t right) const {
    if (slots_.empty()) return {};
    const uint64_t k = key(left, right);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return {s.rank, s.id};
      if (s.key == kEmpty) return {};
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = -1, id = -1;
  };
  static uint64_t key(int32_t l, int32_t r) { return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  Slot& find_slot(uint64_t k) {
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k || slots_[i].key == kEmpty) return slots_[i];
    }
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Slot& s : old) {
      if (s.key != kEmpty) set(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu), {s.rank, s.id});
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace l4::tokenizer
