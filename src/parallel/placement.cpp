#include "parallel/placement.h"

#include <fmt/format.h>

#include "core/error.h"

namespace l4::parallel {

const char* shard_group_name(ShardGroup group) {
  switch (group) {
    case ShardGroup::kExpertParallel:
      return "ep";
  }
  return "?";
}

std::vector<int64_t> Placement::global_shape(c10::IntArrayRef local_shape) const {
  std::vector<int64_t> shape(local_shape.begin(), local_shape.end());
  if (!is_sharded()) return shape;
  L4_ASSERT(dim >= 0 && dim < static_cast<int64_t>(shape.size()), "placement dim {} of a {}-d tensor", dim,
            shape.size());
  shape[dim] = global_size;
  return shape;
}

std::string Placement::describe(int64_t local_size) const {
  if (!is_sharded()) return "replicated";
  const std::string range =
      local_size >= 0 ? fmt::format("[{}, {})", offset, offset + local_size) : fmt::format("from {}", offset);
  return fmt::format("sharded dim {} {} of {} over {}", dim, range, global_size, shard_group_name(group));
}

bool operator==(const Placement& a, const Placement& b) {
  if (a.kind != b.kind) return false;
  if (!a.is_sharded()) return true;
  return a.group == b.group && a.dim == b.dim && a.offset == b.offset && a.global_size == b.global_size;
}

}  // namespace l4::parallel
