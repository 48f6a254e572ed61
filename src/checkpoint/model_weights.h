// A Hugging Face checkpoint seen through canonical tensor names (see name_mapping.h), and the check of a
// checkpoint against the tensors a model expects: every missing name, unexpected name, shape and dtype
// mismatch is reported together in one l4::Error naming the checkpoint files and tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/name_mapping.h"
#include "checkpoint/weight_source.h"

namespace l4::checkpoint {

struct ExpectedTensor {
  std::vector<int64_t> shape;
  std::string dtype;  // safetensors dtype string ("BF16", ...); empty accepts any stored dtype
};

struct WeightCheckReport {
  std::vector<std::string> missing;     // one line per tensor the model expects and the checkpoint lacks
  std::vector<std::string> unexpected;  // one line per checkpoint tensor the model has no place for
  std::vector<std::string> mismatched;  // one line per shape or dtype disagreement
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // Multi-line description of every problem, starting with a one-line summary.
  std::string describe() const;
};

// `expected` is keyed by canonical names.
WeightCheckReport compare_weights(const WeightSource& source, HfLayout layout,
                                  const std::map<std::string, ExpectedTensor>& expected);

// Detects the layout of `source` from its names, then throws one l4::Error listing every problem when it does
// not match `expected`. Returns the layout.
HfLayout check_weights(const WeightSource& source, const std::map<std::string, ExpectedTensor>& expected);

class ModelWeights {
 public:
  // Opens an HF model directory (or one .safetensors file) and detects its layout from the names.
  static ModelWeights open_dir(const std::string& dir);
  ModelWeights(WeightSource source, HfLayout layout);

  HfLayout layout() const { return layout_; }
  const WeightSource& source() const { return source_; }
  std::vector<std::string> names() const;  // canonical, sorted
  bool contains(const std::string& canonical) const;
  // The checkpoint's name for a canonical name; throws l4::Error for names that are not canonical (such as
  // "language_model.model.norm.weight", whose canonical name is "model.norm.weight").
  std::string hf_name(const std::string& canonical) const;
  const TensorEntry& entry(const std::string& canonical) const;
  at::Tensor load(const std::string& canonical) const;
  at::Tensor load_rows(const std::string& canonical, int64_t row_begin, int64_t row_end) const;

  // Throws one l4::Error listing every problem when the checkpoint does not match `expected`.
  void check(const std::map<std::string, ExpectedTensor>& expected) const;

 private:
  WeightSource source_;
  HfLayout layout_;
};

}  // namespace l4::checkpoint
