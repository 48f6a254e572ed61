#include "data/dataset_writer.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/file_io.h"
#include "core/staged_output_dir.h"
#include "data/hdf5_util.h"

namespace l4::data {
namespace fs = std::filesystem;

namespace {

// One shard being written: token-level arrays are buffered and written at close (contiguous datasets
// read fastest); tiles are large, so they are appended as they come.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, int deflate_level)
      : file_(h5::File::create(path)),
        tiles_(file_, "image_tiles", h5::Dtype::kU8, {3, kTileSize, kTileSize}, deflate_level) {
    doc_offsets_.push_back(0);
    image_offsets_.push_back(0);
    doc_image_offsets_.push_back(0);
    image_tile_offsets_.push_back(0);
  }

  void add(const Document& doc, uint64_t task) {
    const uint64_t base = tokens_.size();
    doc_tasks_.push_back(task);
    tokens_.insert(tokens_.end(), doc.tokens.begin(), doc.tokens.end());
    loss_mask_.insert(loss_mask_.end(), doc.loss_mask.begin(), doc.loss_mask.end());
    for (uint8_t m : doc.loss_mask) loss_tokens_ += m;
    doc_offsets_.push_back(base + doc.tokens.size());
    for (const ImageRecord& im : doc.images) {
      tiles_.append(im.tiles.data(), im.num_tiles());
      image_tile_offsets_.push_back(tiles_.size());
      grids_.insert(grids_.end(), {im.grid_rows, im.grid_cols});
      spans_.insert(spans_.end(), {im.token_begin, im.token_end});
    }
    image_offsets_.push_back(tiles_.size());
    doc_image_offsets_.push_back(image_tile_offsets_.size() - 1);
    bytes_ += doc.tokens.size() * 5;
    for (const ImageRecord& im : doc.images) bytes_ += im.tiles.size();
  }

  uint64_t bytes() const { return bytes_; }
  uint64_t documents() const { return doc_offsets_.size() - 1; }

  nlohmann::json close(const std::string& file_name) {
    using h5::Dtype;
    const uint64_t images = image_tile_offsets_.size() - 1;
    h5::write_dataset(file_, "tokens", Dtype::kU32, {tokens_.size()}, tokens_.data());
    h5::write_dataset(file_, "loss_mask", Dtype::kU8, {loss_mask_.size()}, loss_mask_.data());
    h5::write_dataset(file_, "doc_offsets", Dtype::kU64, {doc_offsets_.size()}, doc_offsets_.data());
    h5::write_dataset(file_, "image_offsets", Dtype::kU64, {image_offsets_.size()}, image_offsets_.data());
    h5::write_dataset(file_, "doc_image_offsets", Dtype::kU64, {doc_image_offsets_.size()},
                      doc_image_offsets_.data());
    h5::write_dataset(file_, "image_tile_offsets", Dtype::kU64, {image_tile_offsets_.size()},
                      image_tile_offsets_.data());
    h5::write_dataset(file_, "image_grids", Dtype::kU64, {images, 2}, grids_.data());
    h5::write_dataset(file_, "image_token_spans", Dtype::kU64, {images, 2}, spans_.data());
    h5::write_dataset(file_, "doc_tasks", Dtype::kU64, {doc_tasks_.size()}, doc_tasks_.data());
    file_.flush();
    return {{"file", file_name},           {"documents", documents()}, {"tokens", tokens_.size()},
            {"loss_tokens", loss_tokens_}, {"images", images},         {"tiles", tiles_.size()}};
  }

 private:
  h5::File file_;
  h5::Appender tiles_;
  std::vector<uint32_t> tokens_;
  std::vector<uint8_t> loss_mask_;
  std::vector<uint64_t> doc_offsets_, image_offsets_, doc_image_offsets_, image_tile_offsets_, grids_, spans_,
      doc_tasks_;
  uint64_t loss_tokens_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace

struct DatasetWriter::Impl {
  std::string dir, tmp_dir;
  std::unique_ptr<StagedOutputDir> staged;  // tmp_dir, renamed to dir by finish()
  WriterOptions options;
  std::optional<ShardWriter> shard;
  nlohmann::json shards = nlohmann::json::array();
  nlohmann::json extra = nlohmann::json::object();
  std::vector<std::string> tasks;  // meta.json "tasks", in order of first appearance

  uint64_t task_index(const std::string& name) {
    const std::string task = name.empty() ? "all" : name;
    const auto it = std::find(tasks.begin(), tasks.end(), task);
    if (it != tasks.end()) return static_cast<uint64_t>(it - tasks.begin());
    tasks.push_back(task);
    return tasks.size() - 1;
  }
  int64_t documents = 0, tokens = 0, loss_tokens = 0, images = 0, tiles = 0;
  bool finished = false;

  void close_shard() {
    if (!shard) return;
    nlohmann::json entry = shard->close(shard_file_name(static_cast<int64_t>(shards.size())));
    shards.push_back(entry);
    shard.reset();
  }
};

DatasetWriter::DatasetWriter(std::string dir, WriterOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->dir = fs::path(dir).lexically_normal().string();
  if (!impl_->dir.empty() && impl_->dir.back() == '/') impl_->dir.pop_back();
  impl_->options = std::move(options);
  // overwrite: a previous dataset is replaced; finish() refuses any other non-empty directory.
  impl_->staged = std::make_unique<StagedOutputDir>(impl_->dir, /*overwrite=*/true, "prepare output");
  impl_->tmp_dir = impl_->staged->staging();
}

DatasetWriter::~DatasetWriter() {
  if (impl_ && !impl_->finished) {
    impl_->shard.reset();
    impl_->staged.reset();  // removes the staging directory
  }
}

void DatasetWriter::add(const Document& doc, const std::string& where) {
  Impl& s = *impl_;
  L4_ASSERT(!s.finished, "add() after finish()");
  validate_document(doc, s.options.tokenizer.vocab_size, where);
  uint64_t doc_bytes = doc.tokens.size() * 5;
  for (const ImageRecord& im : doc.images) doc_bytes += im.tiles.size();
  if (s.shard && s.shard->documents() > 0 && s.shard->bytes() + doc_bytes > s.options.shard_bytes)
    s.close_shard();
  if (!s.shard) {
    const std::string path = s.tmp_dir + "/" + shard_file_name(static_cast<int64_t>(s.shards.size()));
    s.shard.emplace(path, s.options.deflate_level);
  }
  s.shard->add(doc, s.task_index(doc.task));
  s.documents += 1;
  s.tokens += static_cast<int64_t>(doc.tokens.size());
  for (uint8_t m : doc.loss_mask) s.loss_tokens += m;
  s.images += static_cast<int64_t>(doc.images.size());
  for (const ImageRecord& im : doc.images) s.tiles += static_cast<int64_t>(im.num_tiles());
}

void DatasetWriter::set_meta(const std::string& key, nlohmann::json value) {
  impl_->extra[key] = std::move(value);
}

int64_t DatasetWriter::num_documents() const {
  return impl_->documents;
}
int64_t DatasetWriter::num_tokens() const {
  return impl_->tokens;
}

void DatasetWriter::finish() {
  Impl& s = *impl_;
  L4_ASSERT(!s.finished, "finish() twice");
  s.close_shard();
  nlohmann::json meta = s.extra;
  meta["format"] = "llama4-dataset";
  meta["schema_version"] = kSchemaVersion;
  meta["split"] = s.options.split;
  meta["tokenizer"] = s.options.tokenizer.to_json();
  meta["num_documents"] = s.documents;
  meta["num_tokens"] = s.tokens;
  meta["num_loss_tokens"] = s.loss_tokens;
  meta["num_images"] = s.images;
  meta["num_tiles"] = s.tiles;
  meta["tile_size"] = kTileSize;
  meta["shards"] = s.shards;
  meta["tasks"] = s.tasks;
  write_file_atomic(s.tmp_dir + "/meta.json", meta.dump(2) + "\n");

  // Replace a previous dataset only (never an unrelated directory).
  std::error_code ec;
  if (fs::exists(s.dir)) {
    const bool replaceable = fs::exists(s.dir + "/meta.json") || fs::is_empty(s.dir, ec);
    L4_CHECK(replaceable, "{}: exists and is not a llama4 dataset (no meta.json); refusing to overwrite it",
             s.dir);
  }
  s.staged->commit();
  s.finished = true;
}

}  // namespace l4::data
