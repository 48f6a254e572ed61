// The trainer's own checkpoint components: the data loader's position and the run's counters (both equal on
// every rank, in trainer_state.json's "shared" part).
#pragma once

#include <cstdint>

#include "checkpoint/state.h"
#include "data/sharded_loader.h"

namespace l4::train {

class LoaderComponent final : public checkpoint::Stateful {
 public:
  explicit LoaderComponent(data::ShardedLoader* loader) : loader_(loader) {}
  void save_state(checkpoint::StateWriter& out) const override;
  // Without a loader (evaluation only) there is nothing to restore.
  void load_state(const checkpoint::StateReader& in) override;

 private:
  data::ShardedLoader* loader_;
};

struct TrainingCounters final : public checkpoint::Stateful {
  int64_t step = 0;
  int64_t tokens_seen = 0;
  int64_t skipped_steps = 0;
  double elapsed_s = 0.0;

  void save_state(checkpoint::StateWriter& out) const override;
  void load_state(const checkpoint::StateReader& in) override;
};

}  // namespace l4::train
