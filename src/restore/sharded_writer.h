// Writing an HF model directory tensor by tensor: the shard layout (names, dtypes, shapes) is planned first,
// so every shard's header can be written before its data and each tensor is produced in pieces, each piece
// written and released in turn. Peak memory is one piece (plus what its producer needs), never a shard or
// the model.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace l4::restore {

struct PlannedTensor {
  std::string name;   // HF name in the output
  std::string dtype;  // safetensors dtype string ("BF16", ...)
  std::vector<int64_t> shape;
};

constexpr int64_t kDefaultMaxShardBytes = 5LL * 1000 * 1000 * 1000;  // transformers' "5GB"

// "5GB", "500MB", "10KB", "1GiB" or a plain byte count -> bytes (decimal units as transformers uses them,
// binary ones with "iB"). l4::Error naming `flag` for anything else or a size that is not positive.
int64_t parse_shard_size(const std::string& text, const std::string& flag);

// l4::Error naming both directories when `output` is `input` or lies inside it (writing there would replace
// or shadow the files being read).
void check_output_outside(const std::string& output, const std::string& input, const std::string& what);

// Receives consecutive pieces of one tensor's data (row-major order), each in the planned dtype.
using TensorSink = std::function<void(const at::Tensor& piece)>;
using TensorProducer = std::function<void(const PlannedTensor& tensor, const TensorSink& sink)>;

// Writes model.safetensors (everything fits in max_shard_bytes) or model-0000i-of-0000n.safetensors plus
// model.safetensors.index.json into `dir` (created). Shards are filled in plan order, a new one started when
// the next tensor would overflow; `produce(t, sink)` hands t's elements to `sink` in one or more pieces of
// t's dtype (their element counts must add up to t's). Weight files of an earlier save that this one does
// not use are removed.
void write_sharded_model(const std::string& dir, const std::vector<PlannedTensor>& plan,
                         const TensorProducer& produce, int64_t max_shard_bytes);

}  // namespace l4::restore
