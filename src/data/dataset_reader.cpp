#include "data/dataset_reader.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"

namespace l4::data {
namespace {

// offsets must start at 0, never decrease and end at `end`.
void check_offsets(const std::string& path, const char* name, const std::vector<uint64_t>& offsets,
                   uint64_t expected_size, uint64_t end, const char* end_what) {
  L4_CHECK(offsets.size() == expected_size, "{}: dataset '{}': {} entries, expected {}", path, name,
           offsets.size(), expected_size);
  L4_CHECK(!offsets.empty() && offsets.front() == 0, "{}: dataset '{}': must start at 0", path, name);
  for (size_t i = 1; i < offsets.size(); ++i) {
    L4_CHECK(offsets[i] >= offsets[i - 1], "{}: dataset '{}': decreases at index {} ({} < {})", path, name, i,
             offsets[i], offsets[i - 1]);
  }
  L4_CHECK(offsets.back() == end, "{}: dataset '{}': ends at {} but {} is {}", path, name, offsets.back(),
           end_what, end);
}

}  // namespace

ShardReader::ShardReader(const std::string& path, int64_t vocab_size)
    : file_(h5::File::open_read(path)), vocab_size_(vocab_size) {
  using h5::Dtype;
  tokens_ = h5::Dataset(file_, "tokens", Dtype::kU32, 1);
  loss_mask_ = h5::Dataset(file_, "loss_mask", Dtype::kU8, 1);
  tiles_ = h5::Dataset(file_, "image_tiles", Dtype::kU8, 4);
  const auto& ts = tiles_.shape();
  L4_CHECK(
      ts[1] == 3 && ts[2] == static_cast<uint64_t>(kTileSize) && ts[3] == static_cast<uint64_t>(kTileSize),
      "{}: dataset 'image_tiles': shape [{}, {}, {}, {}], expected [M, 3, {}, {}]", path, ts[0], ts[1], ts[2],
      ts[3], kTileSize, kTileSize);
  const uint64_t n = tokens_.rows();
  L4_CHECK(loss_mask_.rows() == n, "{}: dataset 'loss_mask' has {} entries but 'tokens' has {}", path,
           loss_mask_.rows(), n);

  doc_offsets_ = h5::read_all_u64(file_, "doc_offsets", 1);
  L4_CHECK(!doc_offsets_.empty(), "{}: dataset 'doc_offsets' is empty (expected D+1 entries)", path);
  const uint64_t docs = doc_offsets_.size() - 1;
  check_offsets(path, "doc_offsets", doc_offsets_, docs + 1, n, "the token count");
  const std::vector<uint64_t> image_offsets = h5::read_all_u64(file_, "image_offsets", 1);
  check_offsets(path, "image_offsets", image_offsets, docs + 1, tiles_.rows(), "the tile count");
  doc_image_offsets_ = h5::read_all_u64(file_, "doc_image_offsets", 1);
  L4_CHECK(!doc_image_offsets_.empty(), "{}: dataset 'doc_image_offsets' is empty", path);
  const uint64_t images = doc_image_offsets_.back();
  check_offsets(path, "doc_image_offsets", doc_image_offsets_, docs + 1, images, "the image count");
  const std::vector<uint64_t> tile_offsets = h5::read_all_u64(file_, "image_tile_offsets", 1);
  check_offsets(path, "image_tile_offsets", tile_offsets, images + 1, tiles_.rows(), "the tile count");
  const std::vector<uint64_t> grids = h5::read_all_u64(file_, "image_grids", 2);
  const std::vector<uint64_t> spans = h5::read_all_u64(file_, "image_token_spans", 2);
  L4_CHECK(grids.size() == images * 2, "{}: dataset 'image_grids': expected shape [{}, 2]", path, images);
  L4_CHECK(spans.size() == images * 2, "{}: dataset 'image_token_spans': expected shape [{}, 2]", path,
           images);

  if (file_.has("doc_tasks")) {
    doc_tasks_ = h5::read_all_u64(file_, "doc_tasks", 1);
    L4_CHECK(doc_tasks_.size() == docs, "{}: dataset 'doc_tasks' has {} entries for {} documents", path,
             doc_tasks_.size(), docs);
  }
  images_.resize(images);
  for (uint64_t d = 0; d < docs; ++d) {
    L4_CHECK(image_offsets[d] == tile_offsets[doc_image_offsets_[d]],
             "{}: document {}: 'image_offsets' disagrees with 'image_tile_offsets'", path, d);
    uint64_t previous_end = 0;
    for (uint64_t i = doc_image_offsets_[d]; i < doc_image_offsets_[d + 1]; ++i) {
      ImageMeta& im = images_[i];
      im.grid_rows = grids[2 * i];
      im.grid_cols = grids[2 * i + 1];
      im.token_begin = spans[2 * i];
      im.token_end = spans[2 * i + 1];
      im.tile_begin = tile_offsets[i];
      im.tile_end = tile_offsets[i + 1];
      L4_CHECK(im.tile_end > im.tile_begin, "{}: image {} has no tiles", path, i);
      L4_CHECK(im.grid_rows >= 1 && im.grid_cols >= 1, "{}: image {}: empty tile grid", path, i);
      L4_CHECK(
          im.token_begin >= previous_end && im.token_begin < im.token_end && im.token_end <= doc_length(d),
          "{}: image {}: token span [{}, {}) is not ordered inside document {} ({} tokens)", path, i,
          im.token_begin, im.token_end, d, doc_length(d));
      previous_end = im.token_end;
    }
  }
}

void ShardReader::read_tokens(uint64_t d, uint64_t begin, uint64_t count, uint32_t* tokens,
                              uint8_t* mask) const {
  L4_ASSERT(d < num_docs() && begin + count <= doc_length(d), "token read outside document");
  const uint64_t at = doc_offsets_[d] + begin;
  tokens_.read_rows(at, count, tokens);
  loss_mask_.read_rows(at, count, mask);
  for (uint64_t i = 0; i < count; ++i) {
    L4_CHECK(vocab_size_ <= 0 || tokens[i] < static_cast<uint64_t>(vocab_size_),
             "{}: token {} has id {} outside the vocabulary [0, {}) (corrupt shard or wrong tokenizer)",
             path(), at + i, tokens[i], vocab_size_);
    L4_CHECK(mask[i] <= 1, "{}: loss_mask[{}] = {} (expected 0 or 1)", path(), at + i, mask[i]);
  }
}

void ShardReader::read_tiles(uint64_t tile_begin, uint64_t count, uint8_t* out) const {
  tiles_.read_rows(tile_begin, count, out);
}

DatasetReader::DatasetReader(const std::string& dir) : dir_(dir) {
  const std::string meta_path = dir + "/meta.json";
  if (!file_exists(meta_path)) {
    std::string hint;
    if (is_directory(dir + ".incomplete"))
      hint = fmt::format(" ({}.incomplete is left from an interrupted prepare)", dir);
    L4_FAIL("{}: not a prepared dataset: {} is missing{}", dir, meta_path, hint);
  }
  try {
    meta_ = nlohmann::json::parse(read_file(meta_path));
  } catch (const nlohmann::json::parse_error& e) {
    L4_FAIL("{}: invalid JSON: {}", meta_path, e.what());
  }
  L4_CHECK(meta_.is_object() && meta_.value("format", "") == "llama4-dataset",
           "{}: not a llama4 dataset description (\"format\" must be \"llama4-dataset\")", meta_path);
  L4_CHECK(meta_.value("schema_version", -1) == kSchemaVersion,
           "{}: schema_version {} is not supported (expected {}); re-run llama4 prepare", meta_path,
           meta_.value("schema_version", -1), kSchemaVersion);
  L4_CHECK(meta_.contains("tokenizer"), "{}: 'tokenizer' is missing", meta_path);
  tokenizer_ = TokenizerInfo::from_json(meta_["tokenizer"], meta_path);
  L4_CHECK(meta_.contains("shards") && meta_["shards"].is_array(), "{}: 'shards' must be a list", meta_path);
  if (meta_.contains("tasks")) {
    L4_CHECK(meta_["tasks"].is_array(), "{}: 'tasks' must be a list of names", meta_path);
    for (const auto& t : meta_["tasks"]) {
      L4_CHECK(t.is_string(), "{}: 'tasks' entries must be strings", meta_path);
      task_names_.push_back(t.get<std::string>());
    }
  }
  // An empty dataset names no task; a dataset from before tasks has every document in one.
  if (task_names_.empty()) task_names_ = {"all"};
  for (const auto& entry : meta_["shards"]) {
    L4_CHECK(entry.is_object() && entry.contains("file") && entry["file"].is_string(),
             "{}: every shard entry needs a 'file'", meta_path);
    const std::string name = entry["file"].get<std::string>();
    L4_CHECK(name.find('/') == std::string::npos, "{}: shard file '{}' must be a plain file name", meta_path,
             name);
    auto shard = std::make_unique<ShardReader>(dir + "/" + name, tokenizer_.vocab_size);
    const auto expect = [&](const char* key, uint64_t actual) {
      L4_CHECK(entry.value(key, static_cast<uint64_t>(-1)) == actual,
               "{}: meta.json says {} {} but the shard holds {} (shard and meta.json do not belong together)",
               shard->path(), key, entry.value(key, static_cast<uint64_t>(-1)), actual);
    };
    expect("documents", shard->num_docs());
    expect("tokens", shard->num_tokens());
    expect("images", shard->num_images());
    expect("tiles", shard->num_tiles());
    for (uint64_t d = 0; d < shard->num_docs(); ++d) {
      L4_CHECK(shard->doc_task(d) < task_names_.size(),
               "{}: document {} has task {} but meta.json names {} task(s)", shard->path(), d,
               shard->doc_task(d), task_names_.size());
    }
    num_tokens_ += shard->num_tokens();
    doc_starts_.push_back(doc_starts_.back() + shard->num_docs());
    shards_.push_back(std::move(shard));
  }
  L4_CHECK(meta_.value("num_documents", static_cast<uint64_t>(-1)) == num_docs(),
           "{}: num_documents disagrees with the shards", meta_path);
}

std::pair<const ShardReader*, uint64_t> DatasetReader::locate(uint64_t g) const {
  L4_ASSERT(g < num_docs(), "document {} out of range", g);
  const size_t s =
      static_cast<size_t>(std::upper_bound(doc_starts_.begin(), doc_starts_.end(), g) - doc_starts_.begin()) -
      1;
  return {shards_[s].get(), g - doc_starts_[s]};
}

uint64_t DatasetReader::doc_length(uint64_t g) const {
  const auto [shard, d] = locate(g);
  return shard->doc_length(d);
}

uint64_t DatasetReader::doc_image_count(uint64_t g) const {
  const auto [shard, d] = locate(g);
  return shard->doc_image_count(d);
}

uint64_t DatasetReader::doc_task(uint64_t g) const {
  const auto [shard, d] = locate(g);
  return shard->doc_task(d);
}

const ImageMeta& DatasetReader::doc_image(uint64_t g, uint64_t k) const {
  const auto [shard, d] = locate(g);
  L4_ASSERT(k < shard->doc_image_count(d), "image index out of range");
  return shard->image(shard->doc_first_image(d) + k);
}

void DatasetReader::read_tokens(uint64_t g, uint64_t begin, uint64_t count, uint32_t* tokens,
                                uint8_t* mask) const {
  const auto [shard, d] = locate(g);
  shard->read_tokens(d, begin, count, tokens, mask);
}

void DatasetReader::read_image_tiles(uint64_t g, uint64_t k, uint8_t* out) const {
  const auto [shard, d] = locate(g);
  const ImageMeta& im = shard->image(shard->doc_first_image(d) + k);
  shard->read_tiles(im.tile_begin, im.tile_end - im.tile_begin, out);
}

Document DatasetReader::read_document(uint64_t g) const {
  Document doc;
  const uint64_t n = doc_length(g);
  doc.tokens.resize(n);
  doc.loss_mask.resize(n);
  read_tokens(g, 0, n, doc.tokens.data(), doc.loss_mask.data());
  doc.task = task_names_[doc_task(g)];
  for (uint64_t k = 0; k < doc_image_count(g); ++k) {
    const ImageMeta& meta = doc_image(g, k);
    ImageRecord im;
    im.grid_rows = meta.grid_rows;
    im.grid_cols = meta.grid_cols;
    im.token_begin = meta.token_begin;
    im.token_end = meta.token_end;
    im.tiles.resize((meta.tile_end - meta.tile_begin) * kTileBytes);
    read_image_tiles(g, k, im.tiles.data());
    doc.images.push_back(std::move(im));
  }
  return doc;
}

}  // namespace l4::data
