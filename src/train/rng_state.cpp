#include "train/rng_state.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"

namespace l4::train {

std::string save_cpu_rng_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  const at::Tensor state = generator.get_state();
  const auto* bytes = state.data_ptr<uint8_t>();
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(state.numel() * 2);
  for (int64_t i = 0; i < state.numel(); ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xF]);
  }
  return out;
}

void restore_cpu_rng_state(const std::string& hex) {
  L4_CHECK(hex.size() % 2 == 0, "checkpoint: malformed RNG state");
  at::Tensor state = at::empty({static_cast<int64_t>(hex.size() / 2)}, at::kByte);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    L4_FAIL("checkpoint: malformed RNG state");
  };
  auto* bytes = state.data_ptr<uint8_t>();
  for (size_t i = 0; i < hex.size() / 2; ++i) bytes[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace l4::train
