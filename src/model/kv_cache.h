// Keys and values of every decoder layer for incremental decoding (generation). Attention appends the new
// tokens' keys and values (after RoPE, QK-norm) and attends over everything cached; the next forward
// continues at position length().
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace l4::model {

class KvCache {
 public:
  explicit KvCache(int64_t num_layers) : keys_(num_layers), values_(num_layers) {}

  // Tokens cached by finished forward passes.
  int64_t length() const { return length_; }
  // Appends keys and values [B, T, Hkv, D] of `layer`; returns all of the layer's keys and values.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& keys, const at::Tensor& values);
  // Called once per forward pass, after every layer appended its `tokens`.
  void advance(int64_t tokens) { length_ += tokens; }
  // Forgets every token from position `length` on (a conversation continuing from an earlier point).
  void truncate(int64_t length);

 private:
  std::vector<at::Tensor> keys_, values_;  // per layer [B, L, Hkv, D]
  int64_t length_ = 0;
};

}  // namespace l4::model
