#include "train/metrics_log.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "train/tensorboard_writer.h"

namespace l4::train {

MetricsLog::MetricsLog(const std::string& run_dir, bool tensorboard) {
  std::filesystem::create_directories(run_dir);
  jsonl_path_ = run_dir + "/metrics.jsonl";
  // Append: a resumed run continues the same file.
  jsonl_ = std::fopen(jsonl_path_.c_str(), "ab");
  L4_CHECK(jsonl_ != nullptr, "{}: cannot open for writing: {}", jsonl_path_, std::strerror(errno));
  if (tensorboard) tensorboard_ = std::make_unique<TensorBoardWriter>(run_dir + "/tb");
}

MetricsLog::~MetricsLog() {
  if (jsonl_ != nullptr) std::fclose(jsonl_);
}

void MetricsLog::log(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  nlohmann::ordered_json line;
  line["step"] = step;
  for (const auto& [key, value] : values) {
    if (std::isfinite(value)) {
      line[key] = value;
    } else {
      line[key] = nullptr;  // JSON has no NaN; keep the key so readers see the step went bad
    }
  }
  const std::string text = line.dump() + "\n";
  std::fwrite(text.data(), 1, text.size(), jsonl_);
  std::fflush(jsonl_);
  if (tensorboard_) {
    const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (const auto& [key, value] : values) tensorboard_->add_scalar(key, value, step, wall);
    tensorboard_->flush();
  }
}

}  // namespace l4::train
