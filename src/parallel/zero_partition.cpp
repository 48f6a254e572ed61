#include "parallel/zero_partition.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/error.h"

namespace l4::parallel {

ZeroPartition::ZeroPartition(std::vector<at::Tensor> params, int rank, int world_size)
    : params_(std::move(params)), rank_(rank), world_(world_size) {
  L4_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "ZeRO partition: rank {} of world size {}",
           rank, world_size);
  for (const at::Tensor& p : params_) {
    L4_CHECK(p.scalar_type() == params_.front().scalar_type(),
             "optimizer.zero needs the replicated trainable parameters in one dtype, found {} and {}",
             c10::toString(params_.front().scalar_type()), c10::toString(p.scalar_type()));
    offsets_.push_back(total_);
    total_ += p.numel();
  }
  chunk_ = std::max<int64_t>(1, (total_ + world_ - 1) / world_);
  const int64_t own_begin = rank_ * chunk_, own_end = std::min(total_, own_begin + chunk_);
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t begin = std::max(own_begin, offsets_[i]);
    const int64_t end = std::min(own_end, offsets_[i] + params_[i].numel());
    if (begin < end) pieces_.push_back({i, begin - offsets_[i], end - begin, begin - own_begin});
  }
}

at::Tensor ZeroPartition::flatten(const std::vector<at::Tensor>& per_param) const {
  L4_ASSERT(per_param.size() == params_.size(), "{} tensors for {} parameters", per_param.size(),
            params_.size());
  const at::TensorOptions options =
      params_.empty() ? at::TensorOptions(at::kFloat) : params_.front().options().requires_grad(false);
  at::Tensor flat = at::zeros({world_ * chunk_}, options);
  for (size_t i = 0; i < params_.size(); ++i) {
    if (per_param[i].defined())
      flat.narrow(0, offsets_[i], params_[i].numel()).copy_(per_param[i].reshape({-1}));
  }
  return flat;
}

at::Tensor ZeroPartition::chunk_from_pieces(const std::vector<at::Tensor>& per_piece,
                                            std::optional<at::ScalarType> dtype) const {
  L4_ASSERT(per_piece.size() == pieces_.size(), "{} tensors for {} pieces", per_piece.size(), pieces_.size());
  at::TensorOptions options =
      params_.empty() ? at::TensorOptions(at::kFloat) : params_.front().options().requires_grad(false);
  if (dtype) options = options.dtype(*dtype);
  at::Tensor chunk = at::zeros({chunk_}, options);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    chunk.narrow(0, pieces_[i].shard_offset, pieces_[i].length).copy_(per_piece[i].reshape({-1}));
  }
  return chunk;
}

}  // namespace l4::parallel
