// Where a parameter (or any state tensor that follows it, such as its optimizer moments) lives across
// ranks. Set by the module that creates the tensor; gradient sync, checkpoints, weight loading and export
// read it instead of recognising shards by name. A new way of splitting state (ZeRO, tensor parallelism) is
// a new group or kind here, not a hunt through the tree.
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>
#include <vector>

namespace l4::parallel {

// The process groups a tensor can be sharded over (ProcessGrid gives the communicator of each).
enum class ShardGroup {
  kExpertParallel,  // the `ep` consecutive ranks that together hold every routed expert
};

const char* shard_group_name(ShardGroup group);

struct Placement {
  enum class Kind { kReplicated, kSharded };
  Kind kind = Kind::kReplicated;
  // kSharded: this rank holds [offset, offset + local size) of `global_size` along `dim`; the ranks of
  // `group` hold disjoint shards, and the ranks holding the same shard (the group's replicas) hold equal
  // values.
  ShardGroup group = ShardGroup::kExpertParallel;
  int64_t dim = 0;
  int64_t offset = 0;
  int64_t global_size = 0;

  static Placement replicated() { return {}; }
  static Placement sharded(ShardGroup group, int64_t dim, int64_t offset, int64_t global_size) {
    return {Kind::kSharded, group, dim, offset, global_size};
  }

  bool is_sharded() const { return kind == Kind::kSharded; }
  // The full tensor's shape from this rank's piece (equal for replicated tensors).
  std::vector<int64_t> global_shape(c10::IntArrayRef local_shape) const;
  // "replicated" / "sharded dim 0 [2, 4) of 4 over ep", for messages.
  std::string describe(int64_t local_size = -1) const;
};

bool operator==(const Placement& a, const Placement& b);

}  // namespace l4::parallel
