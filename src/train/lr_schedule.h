// Learning-rate schedule: linear warmup, then constant, cosine or linear decay to min_lr_ratio.
// The schedule is a multiplier applied to every parameter group's own lr, so per-layer rates keep
// their ratios throughout training.
#pragma once

#include <cstdint>

#include "config/recipe.h"

namespace l4::train {

// Multiplier for optimizer step `step` (0-based) of `total_steps`.
//   warmup:  (step + 1) / warmup_steps                       for step < warmup_steps
//   decay:   progress p = (step - warmup) / max(1, total - warmup), clamped to [0, 1]
//            cosine: r + (1 - r) * 0.5 * (1 + cos(pi p));  linear: r + (1 - r) * (1 - p);  constant: 1
double lr_multiplier(const config::ScheduleSection& schedule, int64_t step, int64_t total_steps);

}  // namespace l4::train
