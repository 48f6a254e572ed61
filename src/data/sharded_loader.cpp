#include "data/sharded_loader.h"

#include <torch/torch.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "config/recipe.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "data/dataset_reader.h"

namespace l4::data {

LoaderState LoaderState::from_json(const nlohmann::json& j) {
  LoaderState s;
  try {
    s.epoch = j.at("epoch").get<int64_t>();
    s.cursor = j.at("cursor").get<int64_t>();
    s.fingerprint = j.value("fingerprint", "");
  } catch (const nlohmann::json::exception& e) {
    L4_FAIL("loader state: expected {{\"epoch\": N, \"cursor\": N}}: {}", e.what());
  }
  L4_CHECK(s.epoch >= 0 && s.cursor >= 0, "loader state: epoch and cursor must be >= 0");
  return s;
}

namespace {

// Says how many documents exceed seq_len and what happens to them; conversations that the loader has to
// continue in the next row (prepared without this seq_len) lose their prompt, which deserves a warning.
void report_overlong(const DatasetReader& reader, const DocIndex& index, const LoaderOptions& o) {
  const uint64_t T = static_cast<uint64_t>(o.seq_len);
  uint64_t longer = 0;
  for (uint64_t len : index.lengths) longer += len > T;
  if (longer == 0) return;
  bool conversations = false;
  for (const auto& source : reader.meta().value("sources", nlohmann::json::array())) {
    for (const char* kind : {"chat", "sharegpt", "alpaca"}) {
      conversations |= source.contains("kinds") && source["kinds"].value(kind, 0) > 0;
    }
  }
  const std::string what =
      fmt::format("{}: {} of {} documents are longer than data.seq_len={}", o.path, longer, index.size(), T);
  if (o.overlong == Overlong::truncate) {
    L4_LOG_INFO("{}: their first {} tokens are kept (data.overlong: truncate)", what, T);
  } else if (o.overlong == Overlong::drop) {
    L4_LOG_INFO("{}: they are left out (data.overlong: drop)", what);
  } else if (conversations) {
    L4_LOG_WARN(
        "{}: they continue in the next rows, where conversations among them lose their prompt; "
        "prepare the data with data.seq_len={} to split the conversations at turns (data.overlong)",
        what, T);
  } else {
    L4_LOG_INFO("{}: they continue in the next rows (data.overlong: split)", what);
  }
}

struct RowRef {
  int64_t epoch = 0;
  uint64_t row = 0;
};

}  // namespace

struct ShardedLoader::Impl {
  LoaderOptions options;
  std::unique_ptr<DatasetReader> reader;
  DocIndex index;
  PackingOptions packing;
  int64_t pad_id = 0, patch_id = -1;

  mutable std::mutex plan_mutex;
  mutable std::map<int64_t, std::shared_ptr<const EpochPlan>> plans;

  // Producer/consumer.
  std::mutex mutex;
  std::condition_variable space_cv, ready_cv;
  std::deque<StepBatch> queue;
  std::exception_ptr error;
  bool stop = false, producer_done = false;
  LoaderState producer_pos, consumer_pos;
  std::string fingerprint;
  std::thread worker;

  std::shared_ptr<const EpochPlan> plan(int64_t epoch) const {
    std::lock_guard<std::mutex> lock(plan_mutex);
    auto it = plans.find(epoch);
    if (it != plans.end()) return it->second;
    auto made = std::make_shared<const EpochPlan>(plan_epoch(index, packing, static_cast<uint64_t>(epoch)));
    plans[epoch] = made;
    while (plans.size() > 3) plans.erase(plans.begin());
    return made;
  }

  const Piece* row_pieces(const EpochPlan& p, uint64_t row, size_t* count) const {
    *count = p.row_starts[row + 1] - p.row_starts[row];
    return p.pieces.data() + p.row_starts[row];
  }

  // Tokens [begin, begin+length] of the piece's document (one more for the last label, if any).
  void read_piece(const Piece& piece, std::vector<uint32_t>& tokens, std::vector<uint8_t>& mask) const {
    const uint64_t doc_len = index.lengths[piece.doc];
    const uint64_t count = piece.cut ? piece.length : std::min(piece.length + 1, doc_len - piece.begin);
    tokens.resize(count);
    mask.resize(count);
    reader->read_tokens(piece.doc, piece.begin, count, tokens.data(), mask.data());
  }

  int64_t count_labels(const RowRef& ref) const {
    const auto p = plan(ref.epoch);
    size_t n = 0;
    const Piece* pieces = row_pieces(*p, ref.row, &n);
    std::vector<uint32_t> tokens;
    std::vector<uint8_t> mask;
    int64_t labels = 0;
    for (size_t k = 0; k < n; ++k) {
      read_piece(pieces[k], tokens, mask);
      for (size_t i = 1; i < mask.size(); ++i) labels += mask[i];
    }
    return labels;
  }

  Batch build(const std::vector<RowRef>& rows) const {
    const int64_t B = static_cast<int64_t>(rows.size()), T = options.seq_len;
    Batch batch;
    batch.input_ids = torch::full({B, T}, pad_id, torch::kInt64);
    batch.labels = torch::full({B, T}, kIgnoreIndex, torch::kInt64);
    batch.position_ids = torch::zeros({B, T}, torch::kInt64);
    batch.doc_ids = torch::full({B, T}, -1, torch::kInt64);
    batch.task_ids = torch::full({B, T}, -1, torch::kInt64);
    int64_t* ids = batch.input_ids.data_ptr<int64_t>();
    int64_t* labels = batch.labels.data_ptr<int64_t>();
    int64_t* positions = batch.position_ids.data_ptr<int64_t>();
    int64_t* doc_ids = batch.doc_ids.data_ptr<int64_t>();
    int64_t* task_ids = batch.task_ids.data_ptr<int64_t>();
    std::vector<uint32_t> tokens;
    std::vector<uint8_t> mask;
    std::vector<uint8_t> tiles;
    std::vector<int64_t> patch_positions;
    int64_t num_tiles = 0;
    for (int64_t b = 0; b < B; ++b) {
      const auto p = plan(rows[b].epoch);
      size_t n = 0;
      const Piece* pieces = row_pieces(*p, rows[b].row, &n);
      int64_t col = 0;
      for (size_t k = 0; k < n; ++k) {
        const Piece& piece = pieces[k];
        read_piece(piece, tokens, mask);
        const int64_t len = static_cast<int64_t>(piece.length);
        const auto task = static_cast<int64_t>(reader->doc_task(piece.doc));
        for (int64_t i = 0; i < len; ++i) {
          const int64_t at = b * T + col + i;
          ids[at] = tokens[i];
          positions[at] = i;
          doc_ids[at] = static_cast<int64_t>(piece.doc);
          task_ids[at] = task;
          if (static_cast<size_t>(i + 1) < tokens.size() && mask[i + 1]) {
            labels[at] = tokens[i + 1];
            batch.loss_tokens += 1;
          }
        }
        batch.segments.push_back(
            {b, col, len, static_cast<int64_t>(piece.doc), static_cast<int64_t>(piece.begin), rows[b].epoch});
        for (uint64_t m = 0; m < reader->doc_image_count(piece.doc); ++m) {
          const ImageMeta& im = reader->doc_image(piece.doc, m);
          if (im.token_begin < piece.begin || im.token_end > piece.begin + piece.length) continue;
          const uint64_t count = im.tile_end - im.tile_begin;
          ImageSlot slot;
          slot.row = b;
          slot.token_begin = col + static_cast<int64_t>(im.token_begin - piece.begin);
          slot.token_end = col + static_cast<int64_t>(im.token_end - piece.begin);
          slot.tile_begin = num_tiles;
          slot.num_tiles = static_cast<int64_t>(count);
          slot.grid_rows = static_cast<int64_t>(im.grid_rows);
          slot.grid_cols = static_cast<int64_t>(im.grid_cols);
          batch.images.push_back(slot);
          tiles.resize(static_cast<size_t>(num_tiles + slot.num_tiles) * kTileBytes);
          reader->read_image_tiles(piece.doc, m, tiles.data() + static_cast<size_t>(num_tiles) * kTileBytes);
          num_tiles += slot.num_tiles;
          for (int64_t c = slot.token_begin; c < slot.token_end; ++c) {
            if (ids[b * T + c] == patch_id) patch_positions.insert(patch_positions.end(), {b, c});
          }
        }
        col += len;
      }
    }
    batch.pixel_tiles = torch::empty({num_tiles, 3, kTileSize, kTileSize}, torch::kUInt8);
    if (num_tiles > 0) std::memcpy(batch.pixel_tiles.data_ptr<uint8_t>(), tiles.data(), tiles.size());
    const int64_t P = static_cast<int64_t>(patch_positions.size() / 2);
    batch.patch_positions = torch::empty({P, 2}, torch::kInt64);
    if (P > 0)
      std::memcpy(batch.patch_positions.data_ptr<int64_t>(), patch_positions.data(), P * 2 * sizeof(int64_t));
    return batch;
  }

  // The next global batch from `pos`; advances `pos`.
  StepBatch make_step(LoaderState& pos) const {
    const int64_t G = options.global_batch;
    std::vector<RowRef> refs;
    while (static_cast<int64_t>(refs.size()) < G) {
      const auto p = plan(pos.epoch);
      L4_CHECK(p->num_rows() > 0, "{}: the dataset has no tokens", options.path);
      if (static_cast<uint64_t>(pos.cursor) >= p->num_rows()) {
        if (!options.repeat) break;
        pos.epoch += 1;
        pos.cursor = 0;
        continue;
      }
      refs.push_back({pos.epoch, static_cast<uint64_t>(pos.cursor)});
      pos.cursor += 1;
    }
    StepBatch step;
    step.state_after = pos;
    step.global_rows = static_cast<int64_t>(refs.size());
    if (refs.empty()) {
      step.end_of_data = true;
      return step;
    }
    const int64_t n = step.global_rows, W = options.world_size, r = options.rank;
    const int64_t first = r * n / W, last = (r + 1) * n / W;  // n == G: exact shares (G % W == 0)
    for (int64_t i = 0; i < n; ++i) {
      if (i >= first && i < last) continue;
      step.global_loss_tokens += count_labels(refs[i]);
    }
    for (int64_t i = first; i < last; i += options.micro_batch) {
      const int64_t end = std::min(last, i + options.micro_batch);
      step.micro.push_back(build(std::vector<RowRef>(refs.begin() + i, refs.begin() + end)));
      step.global_loss_tokens += step.micro.back().loss_tokens;
    }
    return step;
  }

  void worker_loop() {
    while (true) {
      std::unique_lock<std::mutex> lock(mutex);
      space_cv.wait(lock, [&] { return stop || static_cast<int64_t>(queue.size()) < options.prefetch; });
      if (stop) return;
      LoaderState pos = producer_pos;
      lock.unlock();
      StepBatch step;
      try {
        step = make_step(pos);
      } catch (...) {
        lock.lock();
        error = std::current_exception();
        ready_cv.notify_all();
        return;
      }
      lock.lock();
      if (stop) return;
      const bool done = step.end_of_data;
      queue.push_back(std::move(step));
      producer_pos = pos;
      ready_cv.notify_all();
      if (done) {
        producer_done = true;
        return;
      }
    }
  }

  void start() {
    stop = false;
    producer_done = false;
    error = nullptr;
    queue.clear();
    producer_pos = consumer_pos;
    if (options.prefetch > 0) worker = std::thread([this] { worker_loop(); });
  }

  void halt() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    space_cv.notify_all();
    if (worker.joinable()) worker.join();
  }
};

ShardedLoader::ShardedLoader(LoaderOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  L4_CHECK(options.world_size >= 1 && options.rank >= 0 && options.rank < options.world_size,
           "data loader: rank {} outside world size {}", options.rank, options.world_size);
  L4_CHECK(options.micro_batch >= 1, "train.micro_batch must be >= 1, got {}", options.micro_batch);
  L4_CHECK(options.global_batch % (static_cast<int64_t>(options.world_size) * options.micro_batch) == 0 &&
               options.global_batch > 0,
           "train.global_batch ({}) must be a positive multiple of train.micro_batch ({}) x data-parallel "
           "ranks ({})",
           options.global_batch, options.micro_batch, options.world_size);
  L4_CHECK(options.seq_len >= 2, "data.seq_len must be at least 2, got {}", options.seq_len);
  L4_CHECK(options.prefetch >= 0, "data.prefetch must be >= 0, got {}", options.prefetch);
  if (!file_exists(options.path + "/meta.json") && !options.missing_hint.empty()) {
    L4_FAIL("{}: prepared dataset not found (no meta.json); {}", options.path, options.missing_hint);
  }
  s.options = std::move(options);
  s.reader = std::make_unique<DatasetReader>(s.options.path);
  s.index = DocIndex::from_reader(*s.reader);
  s.packing = {s.options.seq_len, s.options.pack, s.options.shuffle, s.options.seed, s.options.overlong};
  report_overlong(*s.reader, s.index, s.options);
  const std::string& sha = s.reader->tokenizer().sha256;
  L4_CHECK(s.options.expected_tokenizer_sha256.empty() || sha == s.options.expected_tokenizer_sha256,
           "{}: prepared with a different tokenizer (sha256 {}, the recipe's is {}); re-run llama4 prepare",
           s.options.path, sha, s.options.expected_tokenizer_sha256);
  s.pad_id = s.reader->tokenizer().pad_id;
  s.fingerprint = fmt::format("docs={} tokens={} seq_len={} pack={} shuffle={} seed={}", s.reader->num_docs(),
                              s.reader->num_tokens(), s.options.seq_len, s.options.pack, s.options.shuffle,
                              s.options.seed);
  if (s.options.overlong != Overlong::split) {
    s.fingerprint += fmt::format(" overlong={}", overlong_name(s.options.overlong));
  }
  s.patch_id = s.reader->tokenizer().patch_id;
  s.start();
}

LoaderOptions loader_options_from_recipe(const config::Recipe& recipe, bool eval, int rank, int world_size) {
  LoaderOptions o;
  o.path = eval ? recipe.data.eval : recipe.data.train;
  L4_CHECK(!o.path.empty(), "{}: data.{} is not set", recipe.source, eval ? "eval" : "train");
  o.seq_len = recipe.data.seq_len;
  o.pack = recipe.data.pack;
  o.shuffle = eval ? false : recipe.data.shuffle;
  o.repeat = !eval;
  o.seed = static_cast<uint64_t>(recipe.train.seed);
  o.global_batch = recipe.train.global_batch;
  o.micro_batch = recipe.train.micro_batch;
  o.rank = rank;
  o.world_size = world_size;
  o.prefetch = recipe.data.prefetch;
  o.overlong = overlong_from_name(recipe.data.overlong);
  o.missing_hint = fmt::format("run: llama4 prepare --config {}", recipe.source);
  return o;
}

ShardedLoader::~ShardedLoader() {
  impl_->halt();
}

StepBatch ShardedLoader::next_step() {
  Impl& s = *impl_;
  StepBatch step;
  if (s.options.prefetch == 0) {
    if (s.producer_done) {
      step.end_of_data = true;
      step.state_after = s.consumer_pos;
      return step;
    }
    step = s.make_step(s.producer_pos);
    s.producer_done = step.end_of_data;
  } else {
    std::unique_lock<std::mutex> lock(s.mutex);
    s.ready_cv.wait(lock, [&] { return !s.queue.empty() || s.error || s.producer_done; });
    if (s.queue.empty() && s.error) std::rethrow_exception(s.error);
    if (s.queue.empty()) {  // pass finished and already reported
      step.end_of_data = true;
      step.state_after = s.consumer_pos;
      return step;
    }
    step = std::move(s.queue.front());
    s.queue.pop_front();
    s.space_cv.notify_all();
  }
  s.consumer_pos = step.state_after;
  return step;
}

LoaderState ShardedLoader::state() const {
  LoaderState s = impl_->consumer_pos;
  s.fingerprint = impl_->fingerprint;
  return s;
}

void ShardedLoader::load_state(const LoaderState& state) {
  Impl& s = *impl_;
  L4_CHECK(state.epoch >= 0 && state.cursor >= 0, "loader state: epoch and cursor must be >= 0");
  L4_CHECK(static_cast<uint64_t>(state.cursor) <= rows_in_epoch(state.epoch),
           "{}: loader state cursor {} is beyond the {} rows of epoch {} (was the dataset re-prepared, or "
           "data.seq_len / data.pack changed?)",
           s.options.path, state.cursor, rows_in_epoch(state.epoch), state.epoch);
  if (!state.fingerprint.empty() && state.fingerprint != s.fingerprint) {
    L4_LOG_WARN(
        "{}: resuming the data stream with different data or settings ({} -> {}); the order of rows "
        "will not continue exactly",
        s.options.path, state.fingerprint, s.fingerprint);
  }
  s.halt();
  s.consumer_pos = state;
  s.consumer_pos.fingerprint.clear();
  s.start();
}

uint64_t ShardedLoader::num_documents() const {
  return impl_->reader->num_docs();
}
uint64_t ShardedLoader::rows_in_epoch(int64_t epoch) const {
  return impl_->plan(epoch)->num_rows();
}
const nlohmann::json& ShardedLoader::dataset_meta() const {
  return impl_->reader->meta();
}

const std::vector<std::string>& ShardedLoader::task_names() const {
  return impl_->reader->task_names();
}

}  // namespace l4::data
