// The CPU random generator's state as text, for checkpoints (every rank saves its own).
#pragma once

#include <string>

namespace l4::train {

std::string save_cpu_rng_state();
void restore_cpu_rng_state(const std::string& hex);

}  // namespace l4::train
