// Byte-pair merging of one pre-tokenised piece. Repeatedly merges the adjacent pair with the lowest rank
// (leftmost first on ties) until no pair can merge: exactly tiktoken's _byte_pair_merge and HF tokenizers'
// Word::merge_all, in O(n log n) with a heap and lazy invalidation, so 25k-byte pieces stay cheap.
#pragma once

#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

namespace l4::tokenizer {

struct PairMerge {
  int32_t rank = -1;  // < 0: the pair does not merge
  int32_t id = -1;    // id of the merged symbol
};

// `initial` holds the starting symbols as (byte offset in the piece, id); `pair(begin, middle, end,
// left_id, right_id)` says whether piece[begin, end) made of [begin, middle) + [middle, end) merges.
// Appends the final ids to `out` and, when `begins` is given, their byte offsets in the piece.
template <class PairFn>
void bpe_merge(const std::vector<std::pair<int32_t, int32_t>>& initial, int32_t piece_size, PairFn pair,
               std::vector<int32_t>& out, std::vector<int32_t>* begins = nullptr) {
  struct Symbol {
    int32_t begin, id, prev, next;
  };
  std::vector<Symbol> sym(initial.size());
  const int32_t n = static_cast<int32_t>(initial.size());
  for (int32_t i = 0; i < n; ++i) sym[i] = {initial[i].first, initial[i].second, i - 1, i + 1 < n ? i + 1 : -1};
  const auto end_of = [&](int32_t i) { return sym[i].next >= 0 ? sym[sym[i].next].begin : piece_size; };

  struct Candidate {
    int32_t rank, left, right, id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  // Symbol indices grow with byte offset, so ordering by `left` is ordering by position.
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = sym[left].next;
    if (right < 0) return;
    const PairMerge m = pair(sym[left].begin, sym[right].begin, end_of(right), sym[left].id, sym[right].id);
    if (m.rank >= 0) heap.push({m.rank, left, right, m.id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    // Stale when either side was merged away since: the pair at `left` must still give the same merge.
    if (sym[top.left].id < 0 || sym[top.left].next != top.right) continue;
    const PairMerge now = pair(sym[top.left].begin, sym[top.right].begin, end_of(top.right), sym[top.left].id,
                               sym[top.right].id);
    if (now.rank != top.rank || now.id != top.id) continue;
    Symbol& left = sym[top.left];
    Symbol& right = sym[top.right];
    left.id = top.id;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.left;
    right.id = -1;
    push(left.prev);
    push(top.left);
  }
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) {
    out.push_back(sym[i].id);
    if (begins) begins->push_back(sym[i].begin);
  }
}

}  // namespace l4::tokenizer
