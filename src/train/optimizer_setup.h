// AdamW over named trainable parameters with per-parameter settings (param_groups.h), the learning-rate
// schedule applied as a multiplier of each group's base lr, and the optimizer state as named tensors for
// checkpoints (so it can be re-sliced when the expert layout changes).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/state.h"
#include "parallel/placement.h"
#include "train/param_groups.h"

namespace torch::optim {
class AdamW;
}

namespace l4::train {

struct NamedParam {
  std::string name;
  at::Tensor param;               // leaf requiring grad
  parallel::Placement placement;  // its optimizer state has the same
};

// A checkpoint component: "optimizer.exp_avg.<name>", "optimizer.exp_avg_sq.<name>" (placed like the
// parameter) and "optimizer.step.<name>" for every parameter updated at least once, and
// "optimizer.master.<name>" for 16-bit parameters.
//
// 16-bit (bf16/fp16) parameters are updated through an fp32 master copy with fp32 exp_avg/exp_avg_sq: a
// step updates the master and rounds it into the parameter, so updates smaller than half a 16-bit ulp
// accumulate instead of being lost. The master starts as the parameter's value at its first update (or
// comes from the checkpoint, which makes a resumed run equal the uninterrupted one).
class OptimizerSetup final : public checkpoint::Stateful {
 public:
  OptimizerSetup(const std::vector<NamedParam>& params, const std::vector<ParamSetting>& settings,
                 double eps);
  ~OptimizerSetup() override;

  torch::optim::AdamW& optimizer() { return *optimizer_; }
  // Sets every group's lr to base lr x multiplier.
  void set_lr_multiplier(double multiplier);
  // The lr in effect for a parameter (read back from the optimizer's own group options).
  double current_lr(const std::string& name) const;
  void step();
  void zero_grad();

  // Optimizer state of one parameter: exp_avg, exp_avg_sq (same shape as the parameter) and the step
  // count; nullopt before its first update.
  struct ParamState {
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::optional<ParamState> state(const std::string& name) const;
  // The fp32 master copy of a 16-bit parameter; undefined for fp32 parameters and before the first update.
  at::Tensor master(const std::string& name) const;
  void set_state(const std::string& name, const ParamState& state);

  void save_state(checkpoint::StateWriter& out) const override;
  void load_state(const checkpoint::StateReader& in) override;

 private:
  std::vector<NamedParam> params_;
  std::vector<double> base_lr_;          // per optimizer group
  std::vector<int64_t> group_of_param_;  // index into groups, per params_ entry
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<at::Tensor> master_;  // per params_ entry: fp32 master of a 16-bit parameter, else undefined
  std::map<const void*, size_t> index_of_impl_;  // parameter TensorImpl -> params_ entry
  size_t index_of(const std::string& name) const;
};

}  // namespace l4::train
