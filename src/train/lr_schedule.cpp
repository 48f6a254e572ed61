#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace l4::train {

double lr_multiplier(const config::ScheduleSection& schedule, int64_t step, int64_t total_steps) {
  L4_ASSERT(step >= 0, "negative step {}", step);
  if (step < schedule.warmup_steps) {
    return static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  }
  const double ratio = schedule.min_lr_ratio;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - schedule.warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - schedule.warmup_steps) / span, 0.0, 1.0);
  switch (schedule.decay) {
    case config::Decay::kCosine:
      return ratio + (1.0 - ratio) * 0.5 * (1.0 + std::cos(M_PI * progress));
    case config::Decay::kLinear:
      return ratio + (1.0 - ratio) * (1.0 - progress);
    case config::Decay::kConstant:
      break;
  }
  return 1.0;
}

}  // namespace l4::train
