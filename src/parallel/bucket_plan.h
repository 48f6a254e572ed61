// Grouping of gradients into flat all-reduce buckets, without tensors (unit-testable).
#pragma once

#include <cstdint>
#include <vector>

namespace l4::parallel {

struct BucketItem {
  int64_t bytes = 0;
  int key = 0;  // items with different keys (reduction group, dtype) never share a bucket
};

struct Bucket {
  int key = 0;
  std::vector<size_t> items;  // indices into the input, in fill order
  int64_t bytes = 0;
};

// Walks items from last to first (backward produces gradients roughly in reverse registration order),
// appending each to the open bucket of its key; a bucket closes when the next item would push it past
// bucket_bytes (an item larger than that gets a bucket of its own). Buckets are returned in the order
// they close, then the still-open ones by ascending key: the same order on every rank.
std::vector<Bucket> plan_buckets(const std::vector<BucketItem>& items, int64_t bucket_bytes);

}  // namespace l4::parallel
