// Measures this machine's matmul peak (FLOP/s) for a dtype with LibTorch, for MFU when no peak is
// configured. Square GEMMs, best of a few timed repetitions after a warm-up.
#pragma once

#include <cstdint>
#include <string>

namespace l4::train {

// dtype: "float32" or "bfloat16"; device: "cpu" or "cuda". Takes about `seconds` of compute.
double measure_gemm_peak_flops(const std::string& dtype, const std::string& device = "cpu", double seconds = 0.5,
                               int64_t size = 1024);

}  // namespace l4::train
