// Hugging Face model directories: "model.safetensors", or "model.safetensors.index.json" naming the shard
// of every tensor (as transformers' save_pretrained writes them). Shards are memory-mapped, so a process
// that loads only some tensors (or expert rows) never reads the rest.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/safetensors.h"

namespace l4::checkpoint {

constexpr const char* kSingleWeightsFile = "model.safetensors";
constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";

class WeightSource {
 public:
  // `dir` holds model.safetensors (preferred, as transformers does) or model.safetensors.index.json plus its
  // shards; `dir` may also be a single .safetensors file. Every shard's header is validated here.
  static WeightSource open_dir(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const TensorEntry& entry(const std::string& name) const;
  // The file (shard) holding `name`, for error messages.
  const std::string& file_of(const std::string& name) const;
  at::Tensor load(const std::string& name) const;
  at::Tensor load_rows(const std::string& name, int64_t row_begin, int64_t row_end) const;
  at::Tensor load_matrix_rows(const std::string& name, int64_t row_begin, int64_t row_end) const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  const SafetensorsFile& file_holding(const std::string& name) const;

  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

// Writes `tensors` as an HF model directory (created if needed): one model.safetensors when everything fits
// in max_shard_bytes, else model-0000i-of-0000n.safetensors shards filled in the given order plus
// model.safetensors.index.json. Files carry {"format": "pt"} metadata as transformers expects. Weight files
// of an earlier save that the new one does not use are removed afterwards.
void save_hf_weights(const std::string& dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                     int64_t max_shard_bytes = 5LL << 30);

}  // namespace l4::checkpoint
