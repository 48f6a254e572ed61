// Bounds oneDNN's caches of prepared matmul kernels before the first bf16 matmul runs.
//
// On the CPU, LibTorch runs bf16 matmuls (linear layers, the grouped experts, and the blocks of the fused
// attention) through oneDNN, which keeps up to 1024 prepared kernels (one per shape) in a process-wide
// cache, and as many in a per-thread cache of LibTorch's own. Expert matmuls see a new row count on almost
// every call, and document-masked attention new block shapes with every batch, so both caches fill with
// shapes that never come back. Measured in bf16 on configs/small.yaml: the process-wide cache alone held
// ~400 MB after 4 MoE steps (at 128 entries: -250 MB at no measured CPU cost; at 0, +0.5 s a step); with
// it at 128, the per-thread cache still grew the heap in use by 15-30 MB a step on the dense variant (seq
// 1024 x 4): bf16 peak RSS 1.21 GB after 15 steps against fp32's 0.98. At 16 entries: 0.89 GB after 15
// steps, 0.84-0.85 after 7 (was 0.86-0.89), the step time within the run-to-run noise.
#pragma once

namespace l4 {

// Capacities used where the user has not set the variables.
inline constexpr int kOneDnnPrimitiveCacheCapacity = 128;  // ONEDNN_PRIMITIVE_CACHE_CAPACITY
inline constexpr int kTorchKernelCacheCapacity = 16;       // LRU_CACHE_CAPACITY

// Sets both variables unless the environment already has them. Call at start-up, before any bf16 matmul
// (each cache reads its capacity once, when it is first used).
void limit_onednn_operator_cache();

}  // namespace l4
