// AdamW over named trainable parameters with per-parameter settings (param_groups.h), the learning-rate
// schedule applied as a multiplier of each group's base lr, and the optimizer state as named tensors for
// checkpoints (so it can be re-sliced when the expert layout changes).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/state.h"
#include "parallel/communicator.h"
#include "parallel/placement.h"
#include "parallel/zero_partition.h"
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

// ZeRO-1/2: AdamW state of the replicated parameters only for this rank's range of the partition; the
// updated ranges are all-gathered into every rank's parameters after each step.
struct ZeroSetup {
  std::shared_ptr<const parallel::ZeroPartition> partition;  // null: ZeRO off
  parallel::Communicator* comm = nullptr;                    // device channel, ranks as the partition's
  // ZeRO-2: this rank's chunk of the summed replicated gradients (GradSync::replicated_grad_shard). Null
  // for ZeRO-1, which reads the owned range of each parameter's full .grad.
  std::function<at::Tensor()> grad_shard;
};

// A checkpoint component: "optimizer.exp_avg.<name>", "optimizer.exp_avg_sq.<name>" (placed like the
// parameter) and "optimizer.step.<name>" for every parameter updated at least once, and
// "optimizer.master.<name>" for 16-bit parameters.
//
// 16-bit (bf16/fp16) parameters are updated through an fp32 master copy with fp32 exp_avg/exp_avg_sq: a
// step updates the master and rounds it into the parameter, so updates smaller than half a 16-bit ulp
// accumulate instead of being lost. The master starts as the parameter's value at its first update (or
// comes from the checkpoint, which makes a resumed run equal the uninterrupted one). Under ZeRO a rank keeps
// the master of its pieces of the replicated parameters only; checkpoints hold full masters either way.
class OptimizerSetup final : public checkpoint::Stateful {
 public:
  // With ZeRO, the partition's parameters must be the replicated ones of `params`, in order.
  OptimizerSetup(const std::vector<NamedParam>& params, const std::vector<ParamSetting>& settings, double eps,
                 ZeroSetup zero = {});
  ~OptimizerSetup() override;

  torch::optim::AdamW& optimizer() { return *optimizer_; }
  // Sets every group's lr to base lr x multiplier.
  void set_lr_multiplier(double multiplier);
  // The lr in effect for a parameter (read back from the optimizer's own group options).
  double current_lr(const std::string& name) const;
  void step();
  void zero_grad();

  // Bytes of optimizer state this rank holds (exp_avg + exp_avg_sq + fp32 masters), for memory reports.
  int64_t state_bytes() const;

  // Optimizer state of one parameter: exp_avg, exp_avg_sq (same shape as the parameter; under ZeRO, of
  // this rank's 1-D piece of a replicated parameter) and the step count; nullopt before its first update
  // (or when this rank owns no piece of it).
  struct ParamState {
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::optional<ParamState> state(const std::string& name) const;
  // The fp32 master copy of a 16-bit parameter (under ZeRO, of this rank's 1-D piece of a replicated one);
  // undefined for fp32 parameters, before the first update, and where another rank owns every element.
  at::Tensor master(const std::string& name) const;
  void set_state(const std::string& name, const ParamState& state);

  void save_state(checkpoint::StateWriter& out) const override;
  void load_state(const checkpoint::StateReader& in) override;

 private:
  std::vector<NamedParam> params_;
  std::vector<double> base_lr_;          // per optimizer group
  std::vector<int64_t> group_of_param_;  // index into groups, per params_ entry
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  // per params_ entry: fp32 master of a 16-bit parameter (under ZeRO, of its owned piece only), else
  // undefined
  std::vector<at::Tensor> master_;
  std::map<const void*, size_t> index_of_impl_;  // parameter TensorImpl -> params_ entry
  ZeroSetup zero_;
  std::vector<int64_t> zero_index_;      // per params_ entry: index in the partition, or -1
  std::vector<int64_t> piece_of_param_;  // per params_ entry: index of its owned piece, or -1
  std::vector<at::Tensor> piece_views_;  // per owned piece: view of the parameter's owned elements
  std::vector<size_t> param_of_piece_;   // per owned piece: its params_ entry
  std::vector<int64_t> zero_steps_;      // per partition parameter: updates so far (equal on all ranks)
  size_t index_of(const std::string& name) const;
  // The tensor AdamW updates for params_[i]: the parameter, its owned piece, or undefined (owned elsewhere).
  at::Tensor optimized(size_t i) const;
  at::Tensor grad_of_piece(size_t piece) const;
  void all_gather_replicated();
};

}  // namespace l4::train
