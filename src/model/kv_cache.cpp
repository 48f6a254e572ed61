#include "model/kv_cache.h"

#include <torch/torch.h>

#include "core/error.h"

namespace l4::model {

std::pair<at::Tensor, at::Tensor> KvCache::append(int64_t layer, const at::Tensor& keys,
                                                  const at::Tensor& values) {
  L4_ASSERT(layer >= 0 && layer < static_cast<int64_t>(keys_.size()), "KV cache has no layer {}", layer);
  at::Tensor& k = keys_[layer];
  at::Tensor& v = values_[layer];
  L4_ASSERT(!k.defined() || k.size(1) == length_, "layer {} appended twice in one forward", layer);
  k = k.defined() ? torch::cat({k, keys}, 1) : keys;
  v = v.defined() ? torch::cat({v, values}, 1) : values;
  return {k, v};
}

void KvCache::truncate(int64_t length) {
  L4_ASSERT(length >= 0 && length <= length_, "KV cache of {} tokens cannot keep {}", length_, length);
  if (length == length_) return;
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    if (!keys_[layer].defined()) continue;
    keys_[layer] = length > 0 ? keys_[layer].narrow(1, 0, length).clone() : at::Tensor();
    values_[layer] = length > 0 ? values_[layer].narrow(1, 0, length).clone() : at::Tensor();
  }
  length_ = length;
}

}  // namespace l4::model
