// Writes a dataset directory (see dataset_format.h). Shards are filled in order up to a size limit.
// Everything goes into "<dir>.incomplete" first; finish() writes meta.json last and renames the
// directory into place, so an interrupted run never leaves something that looks like a dataset.
#pragma once

#include <memory>
#include <string>

#include "data/dataset_format.h"

namespace l4::data {

struct WriterOptions {
  uint64_t shard_bytes = 256ull << 20;  // a new shard starts when the next document would exceed this
  int deflate_level = 1;                // image tile compression (0: none)
  TokenizerInfo tokenizer;
  std::string split = "all";  // train | eval | all
};

class DatasetWriter {
 public:
  DatasetWriter(std::string dir, WriterOptions options);
  ~DatasetWriter();  // without finish(): removes the incomplete directory
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  // `where` names the record in error messages ("file.jsonl:12").
  void add(const Document& doc, const std::string& where = "document");
  // Extra top-level meta.json entries (e.g. "sources", "skipped_records").
  void set_meta(const std::string& key, nlohmann::json value);
  void finish();

  int64_t num_documents() const;
  int64_t num_tokens() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace l4::data
