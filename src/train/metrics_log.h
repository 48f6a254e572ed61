// Run metrics: one JSON object per logged step in <run_dir>/metrics.jsonl, mirrored as TensorBoard
// scalars in <run_dir>/tb/. Only rank 0 writes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace l4::train {

class TensorBoardWriter;

class MetricsLog {
 public:
  MetricsLog(const std::string& run_dir, bool tensorboard);
  ~MetricsLog();

  // Appends {"step": step, key: value, ...} in the given key order and flushes the line.
  void log(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& jsonl_path() const { return jsonl_path_; }

 private:
  std::string jsonl_path_;
  std::FILE* jsonl_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace l4::train
