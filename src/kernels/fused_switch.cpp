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

void set_fused_enabled(bool enabled) {
  enabled_flag().store(enabled, std::memory_order_relaxed);
}

bool fused_applies(std::initializer_list<at::Tensor> tensors) {
  if (!fused_enabled()) return false;
  bool first = true;
  at::ScalarType dtype = at::kFloat;
  for (const at::Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!t.device().is_cpu()) return false;
    if (first) {
      dtype = t.scalar_type();
      if (dtype != at::kFloat && dtype != at::kBFloat16) return false;
      first = false;
    } else if (t.scalar_type() != dtype) {
      return false;
    }
  }
  return true;
}

}  // namespace l4::kernels
