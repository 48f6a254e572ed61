// Sharded training checkpoints, composed of the components of checkpoint/state.h:
//   <dir>/step_NNNNNNN/manifest.json      step, world layout, config snapshot, tensor index
//   <dir>/step_NNNNNNN/rank_RRRRR.h5      each rank's pieces (model shard, optimizer state)
//   <dir>/step_NNNNNNN/trainer_state.json RNG state of every rank, loader position, scheduler
//   <dir>/latest                          name of the newest complete checkpoint
// Written into step_N.tmp/, fsynced, then renamed by rank 0, so a checkpoint that exists is complete.
// Every tensor is stored as dim-0 row pieces of a global tensor, so a checkpoint saved at one
// (world, ep) layout is read back at any other by assembling the rows a rank needs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace l4::checkpoint {

// One tensor, or rows [row_begin, row_begin + tensor.size(0)) of a global tensor, that a rank saves.
struct TensorPiece {
  std::string name;  // global name, e.g. "model.layers.1.feed_forward.experts.gate_up_proj"
  at::Tensor tensor;
  std::vector<int64_t> global_shape;  // empty: same as tensor's
  int64_t row_begin = 0;
};

// What saving needs from the job's communicator (kept abstract so this layer does not depend on MPI).
struct SaveCollective {
  int rank = 0;
  int world_size = 1;
  // Gathers one string from every rank on rank 0 (other ranks get an empty vector).
  std::function<std::vector<std::string>(const std::string&)> gather_to_root = [](const std::string& s) {
    return std::vector<std::string>{s};
  };
  std::function<void()> barrier = [] {};
};

struct SaveRequest {
  std::string dir;
  int64_t step = 0;
  std::vector<TensorPiece> pieces;  // this rank's
  nlohmann::json layout;            // {"world_size": .., "expert_parallel": ..}
  std::string config_yaml;          // resolved recipe snapshot
  nlohmann::json rank_state;        // this rank's own state (RNG), gathered into trainer_state.json
  nlohmann::json shared_state;      // rank 0's: loader position, scheduler, counters
  int64_t keep_last = 3;
  nlohmann::json identity;  // what the run trains (base, adapters, data): compared on resume
};

// Collective: every rank calls it. Returns the final checkpoint directory.
std::string save_checkpoint(const SaveRequest& request, const SaveCollective& collective);

struct Checkpoint {
  std::string path;  // .../step_NNNNNNN
  int64_t step = 0;
  nlohmann::json manifest;
  nlohmann::json trainer_state;
  // Tensor bytes read() has read from the rank files so far (for the load rate in the log).
  mutable int64_t bytes_read = 0;

  // Names in the tensor index.
  std::vector<std::string> names() const;
  std::vector<int64_t> global_shape(const std::string& name) const;
  // Rows [row_begin, row_end) of a global tensor (all rows when row_end < 0), assembled from the pieces
  // of whichever ranks saved them; every piece read is CRC-checked.
  at::Tensor read(const std::string& name, int64_t row_begin = 0, int64_t row_end = -1) const;
};

// How much open_checkpoint reads up front: every piece's CRC (the whole checkpoint), or the metadata only
// (manifest and trainer state under their CRCs, every rank file present at its written size); the pieces
// are CRC-checked anyway when read, so kMetadata finds the same damage, only later, and lets each rank
// of a resume read just its own pieces.
enum class Verify { kEveryPiece, kMetadata };

// Opens one checkpoint directory and verifies it (see Verify). Throws l4::Error naming the damaged file.
Checkpoint open_checkpoint(const std::string& path, Verify verify = Verify::kEveryPiece);

// The newest checkpoint under `dir` that verifies; damaged ones (truncated or CRC-failing shards, missing
// rank files, edited metadata, leftover .tmp directories) are skipped with a warning naming the file.
// None when `dir` holds no complete checkpoint; l4::Error listing each one and why it was rejected when
// checkpoints exist but none verifies.
std::optional<Checkpoint> find_latest_valid(const std::string& dir);

// "step_0000042"
std::string step_dir_name(int64_t step);

}  // namespace l4::checkpoint
