// ShardedLoader: training batches from a prepared dataset, identical at every world size.
//
// The rows of every epoch come from plan_epoch (packing.h). Epochs are chained into one stream of
// rows; global batch s is rows [s*G, (s+1)*G) of that stream (G = global_batch), so it is a function
// of (seed, epoch, position) only. Rank r of W takes rows [r*G/W, (r+1)*G/W) of each global batch and
// splits them into micro-batches. The position (epoch, cursor = rows consumed in that epoch) is the
// whole state: restored on any number of ranks, every document is still seen exactly once per epoch.
// A background thread keeps `prefetch` steps ready.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/packing.h"

namespace l4::config {
struct Recipe;
}

namespace l4::data {

inline constexpr int64_t kIgnoreIndex = -100;

struct LoaderOptions {
  std::string path;  // prepared dataset directory
  int64_t seq_len = 512;
  bool pack = true;
  bool shuffle = true;
  uint64_t seed = 0;
  Overlong overlong = Overlong::split;  // documents longer than seq_len (data.overlong)
  int64_t global_batch = 8;             // rows per optimizer step over all ranks
  int64_t micro_batch = 4;              // rows per forward/backward on one rank
  int rank = 0;
  int world_size = 1;
  int64_t prefetch = 2;      // steps kept ready by the background thread (0: none)
  bool repeat = true;        // false: one pass over epoch 0 (evaluation), last batch may be short
  std::string missing_hint;  // appended to the error when the dataset is missing ("run llama4 prepare ...")
  std::string
      expected_tokenizer_sha256;  // non-empty: the dataset must have been prepared with this tokenizer
};

// Options for the recipe's training split (eval = false) or its evaluation pass (eval = true: data.eval,
// in order, one pass). The error for a missing dataset names the `llama4 prepare --config` to run.
LoaderOptions loader_options_from_recipe(const l4::config::Recipe& recipe, bool eval, int rank,
                                         int world_size);

struct LoaderState {
  int64_t epoch = 0;
  int64_t cursor = 0;  // rows of `epoch` already consumed
  // What the row stream depends on (documents, tokens, seq_len, pack, shuffle, seed); a resume with a
  // different one is not exact and is warned about. Empty: unknown.
  std::string fingerprint;
  nlohmann::json to_json() const {
    return {{"epoch", epoch}, {"cursor", cursor}, {"fingerprint", fingerprint}};
  }
  static LoaderState from_json(const nlohmann::json& j);
  bool operator==(const LoaderState& o) const { return epoch == o.epoch && cursor == o.cursor; }
};

// One document piece placed in a row (for bookkeeping and tests).
struct Segment {
  int64_t row = 0, col = 0, length = 0;
  int64_t doc = 0, doc_begin = 0;  // global document index and first token within it
  int64_t epoch = 0;
};

struct ImageSlot {
  int64_t row = 0;
  int64_t token_begin = 0, token_end = 0;  // the image's token span in the row
  int64_t tile_begin = 0, num_tiles = 0;   // its tiles in pixel_tiles
  int64_t grid_rows = 1, grid_cols = 1;
};

struct Batch {
  at::Tensor input_ids;     // [B, T] int64 (pad token after the last piece)
  at::Tensor labels;        // [B, T] int64: next token, kIgnoreIndex where masked, at document ends, padding
  at::Tensor position_ids;  // [B, T] int64: restart at 0 with every piece
  at::Tensor doc_ids;      // [B, T] int64: global document index, -1 on padding; attend only within equal ids
  at::Tensor task_ids;     // [B, T] int64: the document's task (ShardedLoader::task_names()), -1 on padding
  at::Tensor pixel_tiles;  // [Ntiles, 3, 336, 336] uint8 RGB; vision::normalize_tiles gives pixel_values
  at::Tensor patch_positions;  // [P, 2] int64 (row, col) of the <|patch|> tokens, in tile order
  std::vector<ImageSlot> images;
  std::vector<Segment> segments;
  int64_t loss_tokens = 0;  // labels != kIgnoreIndex in this micro-batch
};

struct StepBatch {
  std::vector<Batch> micro;        // this rank's micro-batches, in order
  int64_t global_loss_tokens = 0;  // over the whole global batch (all ranks): the loss denominator
  int64_t global_rows = 0;         // rows in the global batch (< G only for the last batch of a pass)
  LoaderState state_after;         // position after this step
  bool end_of_data = false;        // repeat=false and the pass is over: `micro` is empty
};

class ShardedLoader {
 public:
  explicit ShardedLoader(LoaderOptions options);
  ~ShardedLoader();
  ShardedLoader(const ShardedLoader&) = delete;
  ShardedLoader& operator=(const ShardedLoader&) = delete;

  StepBatch next_step();
  LoaderState state() const;  // after the last step returned by next_step()
  void load_state(const LoaderState& state);

  uint64_t num_documents() const;
  uint64_t rows_in_epoch(int64_t epoch) const;
  const nlohmann::json& dataset_meta() const;
  // The dataset's task names (meta.json "tasks"; ["all"] when it has none).
  const std::vector<std::string>& task_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace l4::data
