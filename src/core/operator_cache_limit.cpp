#include "core/operator_cache_limit.h"

#include <cstdlib>
#include <string>

namespace l4 {

void limit_onednn_operator_cache() {
  ::setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", std::to_string(kOneDnnPrimitiveCacheCapacity).c_str(),
           /*overwrite=*/0);
  ::setenv("LRU_CACHE_CAPACITY", std::to_string(kTorchKernelCacheCapacity).c_str(), /*overwrite=*/0);
}

}  // namespace l4
