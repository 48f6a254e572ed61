#include "train/gemm_probe.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/timer.h"

namespace l4::train {

double measure_gemm_peak_flops(const std::string& dtype, const std::string& device, double seconds,
                               int64_t size) {
  L4_CHECK(dtype == "float32" || dtype == "bfloat16", "gemm probe: unsupported dtype '{}'", dtype);
  const auto options = torch::TensorOptions()
                           .dtype(dtype == "float32" ? torch::kFloat32 : torch::kBFloat16)
                           .device(device == "cuda" ? torch::kCUDA : torch::kCPU);
  const torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::randn({size, size}, options);
  const torch::Tensor b = torch::randn({size, size}, options);
  torch::Tensor c = torch::matmul(a, b);  // warm-up: kernel selection, page faults
  if (device == "cuda") torch::cuda::synchronize();
  const double flops_per_gemm = 2.0 * size * size * size;
  double best = 0.0;
  Stopwatch total;
  while (total.seconds() < seconds || best == 0.0) {
    Stopwatch one;
    const int repeats = 4;
    for (int i = 0; i < repeats; ++i) c = torch::matmul(a, b);
    if (device == "cuda") torch::cuda::synchronize();
    best = std::max(best, repeats * flops_per_gemm / one.seconds());
  }
  return best;
}

}  // namespace l4::train
