// Benchmark (not a test): this machine's matmul peak with LibTorch, the denominator of MFU.
// Prints one JSON line: {"dtype": ..., "size": ..., "tflops": best over the sizes}.
//   build/bin/bench_gemm float32|bfloat16 [seconds=2] [sizes=1024,2048]
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/gemm_probe.h"

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_gemm float32|bfloat16 [seconds] [sizes, comma separated]\n");
    return 2;
  }
  const std::string dtype = argv[1];
  const double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
  std::vector<int64_t> sizes;
  std::stringstream list(argc > 3 ? argv[3] : "1024,2048");
  for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::stoll(item));
  double best = 0.0;
  int64_t best_size = 0;
  for (const int64_t size : sizes) {
    const double flops = l4::train::measure_gemm_peak_flops(dtype, "cpu", seconds / sizes.size(), size);
    if (flops > best) best = flops, best_size = size;
  }
  std::printf("{\"dtype\": \"%s\", \"size\": %lld, \"tflops\": %.4f}\n", dtype.c_str(),
              static_cast<long long>(best_size), best / 1e12);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_gemm: %s\n", e.what());
  return 1;
}
