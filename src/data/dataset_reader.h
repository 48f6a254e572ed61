// Reads a prepared dataset directory (see dataset_format.h). Opening validates meta.json against the
// shards and every shard's index arrays (shapes, offsets monotonic and in range, image spans inside
// their documents); token reads check id range and mask values. Any problem is an l4::Error naming
// the file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/dataset_format.h"
#include "data/hdf5_util.h"

namespace l4::data {

struct ImageMeta {
  uint64_t grid_rows = 1, grid_cols = 1;
  uint64_t token_begin = 0, token_end = 0;  // relative to the document start
  uint64_t tile_begin = 0, tile_end = 0;    // rows of the shard's image_tiles
};

class ShardReader {
 public:
  ShardReader(const std::string& path, int64_t vocab_size);
  const std::string& path() const { return file_.path(); }
  uint64_t num_docs() const { return doc_offsets_.size() - 1; }
  uint64_t num_tokens() const { return doc_offsets_.back(); }
  uint64_t num_images() const { return images_.size(); }
  uint64_t num_tiles() const { return tiles_.rows(); }
  uint64_t doc_length(uint64_t d) const { return doc_offsets_[d + 1] - doc_offsets_[d]; }
  uint64_t doc_first_image(uint64_t d) const { return doc_image_offsets_[d]; }
  uint64_t doc_image_count(uint64_t d) const { return doc_image_offsets_[d + 1] - doc_image_offsets_[d]; }
  const ImageMeta& image(uint64_t i) const { return images_[i]; }
  // Index into the dataset's task names (0 for a shard written without doc_tasks).
  uint64_t doc_task(uint64_t d) const { return doc_tasks_.empty() ? 0 : doc_tasks_[d]; }
  // Tokens [begin, begin+count) of document d (positions relative to the document).
  void read_tokens(uint64_t d, uint64_t begin, uint64_t count, uint32_t* tokens, uint8_t* mask) const;
  void read_tiles(uint64_t tile_begin, uint64_t count, uint8_t* out) const;

 private:
  h5::File file_;
  int64_t vocab_size_;
  h5::Dataset tokens_, loss_mask_, tiles_;
  std::vector<uint64_t> doc_offsets_, doc_image_offsets_, doc_tasks_;
  std::vector<ImageMeta> images_;
};

class DatasetReader {
 public:
  explicit DatasetReader(const std::string& dir);
  const std::string& dir() const { return dir_; }
  const nlohmann::json& meta() const { return meta_; }
  const TokenizerInfo& tokenizer() const { return tokenizer_; }
  uint64_t num_docs() const { return doc_starts_.back(); }
  uint64_t num_tokens() const { return num_tokens_; }
  size_t num_shards() const { return shards_.size(); }

  // Documents are numbered globally across shards, in shard order.
  uint64_t doc_length(uint64_t g) const;
  uint64_t doc_image_count(uint64_t g) const;
  // The task of document g, an index into task_names() (meta.json "tasks"; ["all"] for older datasets).
  uint64_t doc_task(uint64_t g) const;
  const std::vector<std::string>& task_names() const { return task_names_; }
  const ImageMeta& doc_image(uint64_t g, uint64_t k) const;
  void read_tokens(uint64_t g, uint64_t begin, uint64_t count, uint32_t* tokens, uint8_t* mask) const;
  // Tiles of image k of document g: (tile_end - tile_begin) * kTileBytes bytes.
  void read_image_tiles(uint64_t g, uint64_t k, uint8_t* out) const;
  Document read_document(uint64_t g) const;

 private:
  std::pair<const ShardReader*, uint64_t> locate(uint64_t g) const;

  std::string dir_;
  nlohmann::json meta_;
  TokenizerInfo tokenizer_;
  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<std::string> task_names_;
  std::vector<uint64_t> doc_starts_{0};  // global index of each shard's first document, + total
  uint64_t num_tokens_ = 0;
};

}  // namespace l4::data
