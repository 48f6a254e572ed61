// Training state as components that save and restore themselves (the model's trained tensors, the
// optimizer, the data loader, the RNG, the trainer's counters): each implements Stateful, and a
// checkpoint is composed of them (training_checkpoint.h). Tensors carry their placement, so a component
// never decides which rank writes what or which rows it reads back: a piece is written by the first rank of
// its replica group and read back as this rank's shard at any (world, ep) layout.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/training_checkpoint.h"
#include "parallel/placement.h"

namespace l4::checkpoint {

class StateWriter {
 public:
  // `writes_here(placement)`: whether this rank writes tensors with that placement (the first of their
  // replica group, ProcessGrid::first_replica).
  explicit StateWriter(std::function<bool(const parallel::Placement&)> writes_here);

  // A tensor, or this rank's dim-0 piece of a sharded one.
  void tensor(const std::string& name, const at::Tensor& value, const parallel::Placement& placement);
  // JSON that is equal on every rank (rank 0's goes into trainer_state.json "shared").
  void shared(const std::string& key, nlohmann::json value);
  // JSON of this rank (gathered into trainer_state.json "ranks").
  void per_rank(const std::string& key, nlohmann::json value);

  // Moves what was written into a save request.
  void fill(SaveRequest& request);

 private:
  std::function<bool(const parallel::Placement&)> writes_here_;
  std::vector<TensorPiece> pieces_;
  nlohmann::json shared_ = nlohmann::json::object();
  nlohmann::json per_rank_ = nlohmann::json::object();
};

class StateReader {
 public:
  // This rank's view of a checkpoint saved at any world size (per-rank state: this rank's when the world
  // size is unchanged, else rank 0's).
  StateReader(const Checkpoint& checkpoint, int rank, int world_size);

  const std::string& path() const { return checkpoint_.path; }
  bool has_tensor(const std::string& name) const;
  // The tensor, or this rank's rows of a sharded one (`local_rows` of them from the placement's offset);
  // l4::Error naming the checkpoint and tensor when it is missing.
  at::Tensor tensor(const std::string& name, const parallel::Placement& placement,
                    int64_t local_rows = -1) const;
  // Null when absent.
  const nlohmann::json& shared(const std::string& key) const;
  const nlohmann::json& per_rank(const std::string& key) const;

 private:
  const Checkpoint& checkpoint_;
  const nlohmann::json* mine_ = nullptr;
};

class Stateful {
 public:
  virtual ~Stateful() = default;
  virtual void save_state(StateWriter& out) const = 0;
  virtual void load_state(const StateReader& in) = 0;
};

}  // namespace l4::checkpoint
