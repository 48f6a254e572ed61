#include "parallel/bucket_plan.h"

#include <torch/torch.h>

#include <map>

#include "core/error.h"

namespace l4::parallel {

std::vector<Bucket> plan_buckets(const std::vector<BucketItem>& items, int64_t bucket_bytes) {
  L4_CHECK(bucket_bytes > 0, "gradient bucket size must be positive, got {} bytes", bucket_bytes);
  std::vector<Bucket> closed;
  std::map<int, Bucket> open;  // ordered by key for a deterministic final flush
  for (size_t k = items.size(); k-- > 0;) {
    const BucketItem& item = items[k];
    auto it = open.find(item.key);
    if (it == open.end()) {
      it = open.emplace(item.key, Bucket{item.key, {}, 0}).first;
    } else if (!it->second.items.empty() && it->second.bytes + item.bytes > bucket_bytes) {
      closed.push_back(std::move(it->second));
      it->second = Bucket{item.key, {}, 0};
    }
    it->second.items.push_back(k);
    it->second.bytes += item.bytes;
  }
  for (auto& [key, bucket] : open) {
    if (!bucket.items.empty()) closed.push_back(std::move(bucket));
  }
  return closed;
}

}  // namespace l4::parallel
