#include "core/allocator_tuning.h"

#include <cstdlib>  // defines __GLIBC__ on glibc systems

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace l4 {

void keep_large_allocations_in_heap() {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit; above it, blocks are still mapped.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // Free memory at the top of the heap is returned only beyond 1 GiB, so steady-state steps reuse it.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace l4
