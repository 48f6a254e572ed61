// Keeps large freed blocks in the process heap instead of returning them to the kernel.
//
// Training allocates and frees the same multi-megabyte activation and gradient buffers every step. With
// glibc's defaults, blocks over a dynamic threshold are mmap'ed and unmapped each time, so every step pays
// page faults and zero-filling for memory it just released (a tenth of a CPU training step, measured).
#pragma once

namespace l4 {

// Call once at start-up, before the first large allocation. No effect on allocators other than glibc's.
void keep_large_allocations_in_heap();

}  // namespace l4
