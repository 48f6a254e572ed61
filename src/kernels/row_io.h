// Row access for the fused loops (included by the *_cpu.cpp files only): every kernel computes in float32;
// a bfloat16 row is widened into a per-thread scratch row first and narrowed (round to nearest even, as a
// LibTorch cast rounds) when written back. A float32 row is used in place.
#pragma once

#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>

namespace l4::kernels::detail {

template <typename T>
struct RowIO;

template <>
struct RowIO<float> {
  static const float* read(const float* row, float* /*scratch*/, int64_t /*n*/) { return row; }
  static float* target(float* row, float* /*scratch*/) { return row; }
  static void write(const float* /*values*/, float* /*row*/, int64_t /*n*/) {}
  // Rounds values to what storing them as T and reading them back gives: nothing to do for float.
  static void round(float* /*values*/, int64_t /*n*/) {}
};

template <>
struct RowIO<c10::BFloat16> {
  static const float* read(const c10::BFloat16* row, float* scratch, int64_t n) {
    at::vec::convert(row, scratch, n);
    return scratch;
  }
  static float* target(c10::BFloat16* /*row*/, float* scratch) { return scratch; }
  static void write(const float* values, c10::BFloat16* row, int64_t n) { at::vec::convert(values, row, n); }
  static void round(float* values, int64_t n) {
    constexpr int64_t kBlock = 256;
    c10::BFloat16 narrow[kBlock];
    for (int64_t i = 0; i < n; i += kBlock) {
      const int64_t len = std::min(kBlock, n - i);
      at::vec::convert(values + i, narrow, len);
      at::vec::convert(narrow, values + i, len);
    }
  }
};

// Smallest number of rows one thread takes: about 32768 elements, LibTorch's grain size for elementwise work.
inline int64_t grain_rows(int64_t width) {
  constexpr int64_t kGrainElements = 32768;
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(width, 1));
}

}  // namespace l4::kernels::detail
