#include "train/training_state.h"

#include "core/error.h"

namespace l4::train {

void LoaderComponent::save_state(checkpoint::StateWriter& out) const {
  L4_ASSERT(loader_ != nullptr, "saving a checkpoint without a data loader");
  out.shared("loader", loader_->state().to_json());
}

void LoaderComponent::load_state(const checkpoint::StateReader& in) {
  if (loader_ == nullptr) return;
  const nlohmann::json& state = in.shared("loader");
  L4_CHECK(!state.is_null(), "{}: trainer_state.json has no data loader state", in.path());
  loader_->load_state(data::LoaderState::from_json(state));
}

void TrainingCounters::save_state(checkpoint::StateWriter& out) const {
  out.shared("step", step);
  out.shared("tokens_seen", tokens_seen);
  out.shared("elapsed_s", elapsed_s);
  out.shared("skipped_steps", skipped_steps);
}

void TrainingCounters::load_state(const checkpoint::StateReader& in) {
  const nlohmann::json& saved_step = in.shared("step");
  L4_CHECK(saved_step.is_number_integer(), "{}: trainer_state.json has no step", in.path());
  step = saved_step.get<int64_t>();
  auto number = [&](const char* key, auto fallback) {
    const nlohmann::json& v = in.shared(key);
    return v.is_number() ? v.get<decltype(fallback)>() : fallback;
  };
  tokens_seen = number("tokens_seen", int64_t{0});
  elapsed_s = number("elapsed_s", 0.0);
  skipped_steps = number("skipped_steps", int64_t{0});
}

}  // namespace l4::train
