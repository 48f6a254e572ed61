// Bounds oneDNN's caches of prepared matmul kernels before the first bf16 matmul runs.
//
// On the CPU, LibTorch runs bf16 matmuls (linear layers, and the blocks of the fused attention) through
// oneDNN, which keeps up to 1024 prepared kernels (one per shape) in a process-wide cache, and as many in
// a per-thread cache of LibTorch's own. Document-masked training changes the attention's block shapes
// with every batch, so both caches fill with shapes that never come back: on a dense 8-layer model
// (seq 1024 x 4) the heap in use grew by 15-30 MB a step, and bf16 peak RSS passed fp32's after six
// steps. With the capacities below the growth is gone (bf16 peak RSS 0.84-0.85 GB at 7 steps, was
// 0.86-0.89; 0.89 GB at 15, was 1.21; fp32 0.96-0.98) and the step time is within the run-to-run noise.
#pragma once

namespace l4 {

// Capacities used where the user has not set the variables.
inline constexpr int kOneDnnPrimitiveCacheCapacity = 64;  // ONEDNN_PRIMITIVE_CACHE_CAPACITY
inline constexpr int kTorchKernelCacheCapacity = 16;      // LRU_CACHE_CAPACITY

// Sets both variables unless the environment already has them. Call at start-up, before any bf16 matmul
// (each cache reads its capacity once, when it is first used).
void limit_onednn_operator_cache();

}  // namespace l4
