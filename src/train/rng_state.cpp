#include "train/rng_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/torch.h>

#include "core/error.h"

namespace l4::train {

namespace {

std::string to_hex(const at::Tensor& state) {
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

at::Tensor from_hex(const std::string& hex) {
  L4_CHECK(hex.size() % 2 == 0, "checkpoint: malformed RNG state");
  at::Tensor state = at::empty({static_cast<int64_t>(hex.size() / 2)}, at::kByte);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    L4_FAIL("checkpoint: malformed RNG state");
  };
  auto* bytes = state.data_ptr<uint8_t>();
  for (size_t i = 0; i < hex.size() / 2; ++i)
    bytes[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return state;
}

std::string save_generator(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return to_hex(generator.get_state());
}

void restore_generator(at::Generator generator, const std::string& hex) {
  const at::Tensor state = from_hex(hex);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace

std::string save_cpu_rng_state() {
  return save_generator(at::detail::getDefaultCPUGenerator());
}

void restore_cpu_rng_state(const std::string& hex) {
  restore_generator(at::detail::getDefaultCPUGenerator(), hex);
}

void RngState::save_state(checkpoint::StateWriter& out) const {
  out.per_rank("rng", save_cpu_rng_state());
  if (!device_.is_cpu())
    out.per_rank("cuda_rng", save_generator(at::globalContext().defaultGenerator(device_)));
}

void RngState::load_state(const checkpoint::StateReader& in) {
  const nlohmann::json& cpu = in.per_rank("rng");
  L4_CHECK(cpu.is_string(), "{}: trainer_state.json has no RNG state for this rank", in.path());
  restore_cpu_rng_state(cpu.get<std::string>());
  const nlohmann::json& device = in.per_rank("cuda_rng");
  if (!device_.is_cpu() && device.is_string()) {
    restore_generator(at::globalContext().defaultGenerator(device_), device.get<std::string>());
  }
}

}  // namespace l4::train
