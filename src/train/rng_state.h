// The random generators' states as a checkpoint component: every rank saves its own CPU generator and, on
// a GPU run, its device's generator ("rng", "cuda_rng" in trainer_state.json's per-rank part).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "checkpoint/state.h"

namespace l4::train {

std::string save_cpu_rng_state();
void restore_cpu_rng_state(const std::string& hex);

class RngState final : public checkpoint::Stateful {
 public:
  explicit RngState(const at::Device& device) : device_(device) {}
  void save_state(checkpoint::StateWriter& out) const override;
  // A checkpoint without a device generator state (saved on the CPU) leaves the device generator as seeded.
  void load_state(const checkpoint::StateReader& in) override;

 private:
  at::Device device_;
};

}  // namespace l4::train
