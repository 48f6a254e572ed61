#include "kernels/fused_switch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace l4::kernels {
namespace {

bool cpu_has_loop_isa() {
#if defined(L4_KERNELS_AVX2)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return true;
#endif
}

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("L4_FUSED_KERNELS");
    return !(env != nullptr && std::strcmp(env, "0") == 0);
  }()};
  return flag;
}

}  // namespace

bool fused_enabled() {
  static const bool isa = cpu_has_loop_isa();
  return isa && enabled_flag().load(std::memory_order_relaxed);
}

bool fused_cuda_built() {
#if defined(L4_KERNELS_CUDA)
  return true;
#else
  return false;
#endif
}

void set_fused_enabled(bool enabled) {
  enabled_flag().store(enabled, std::memory_order_relaxed);
}

bool fused_applies(std::initializer_list<at::Tensor> tensors) {
  if (!enabled_flag().load(std::memory_order_relaxed)) return false;
  bool first = true;
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  for (const at::Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (first) {
      dtype = t.scalar_type();
      device = t.device();
      if (dtype != at::kFloat && dtype != at::kBFloat16) return false;
      first = false;
    } else if (t.scalar_type() != dtype || t.device() != device) {
      return false;
    }
  }
  // The CPU loops need the instructions they were built for; the CUDA loops exist in CUDA builds only.
  if (device.is_cpu()) return fused_enabled();
  return device.is_cuda() && fused_cuda_built();
}

}  // namespace l4::kernels
