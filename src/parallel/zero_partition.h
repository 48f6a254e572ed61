// ZeroPartition: the layout of ZeRO sharding. The replicated trainable parameters, flattened one after the
// other in a fixed order, form one flat space of `total()` elements, padded to `world * chunk()`; rank r
// owns the contiguous range [r * chunk, (r + 1) * chunk) of it. ZeRO-1 keeps AdamW state only for the
// owned range; ZeRO-2 also keeps only the owned range of the summed gradient. Both sides (GradSync and
// OptimizerSetup) read the same partition, so they agree on which element is whose.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace l4::parallel {

class ZeroPartition {
 public:
  // The part of one parameter that lies in this rank's range: elements [begin, begin + length) of the
  // flattened parameter, at `shard_offset` within this rank's chunk.
  struct Piece {
    size_t param = 0;  // index into the partition's parameters
    int64_t begin = 0;
    int64_t length = 0;
    int64_t shard_offset = 0;
  };

  // `params`: the replicated parameters in a fixed order, equal on every rank, all of one dtype.
  ZeroPartition(std::vector<at::Tensor> params, int rank, int world_size);

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  int64_t total() const { return total_; }
  int64_t chunk() const { return chunk_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  // Start of parameter i in the flat space.
  int64_t param_offset(size_t i) const { return offsets_[i]; }
  // The owned pieces, in flat order (they tile [0, owned elements) of the chunk).
  const std::vector<Piece>& pieces() const { return pieces_; }

  // The flat padded [world * chunk] concatenation of one tensor per parameter (same shapes as the
  // parameters); undefined entries count as zeros.
  at::Tensor flatten(const std::vector<at::Tensor>& per_param) const;
  // This rank's [chunk] slice from a tensor per owned piece (`per_piece[i]` has pieces()[i].length
  // elements), zero-padded, of `dtype` (default: the parameters' dtype; the fp32 optimizer state and
  // masters of 16-bit parameters pass kFloat so the gather does not round them).
  at::Tensor chunk_from_pieces(const std::vector<at::Tensor>& per_piece,
                               std::optional<at::ScalarType> dtype = std::nullopt) const;

 private:
  std::vector<at::Tensor> params_;
  std::vector<int64_t> offsets_;
  std::vector<Piece> pieces_;
  int rank_ = 0, world_ = 1;
  int64_t total_ = 0, chunk_ = 0;
};

}  // namespace l4::parallel
