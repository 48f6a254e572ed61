#include "checkpoint/model_weights.h"

#include <algorithm>

#include "core/error.h"

namespace l4::checkpoint {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string alias(const std::string& hf_name, const std::string& canonical) {
  return hf_name == canonical ? "" : fmt::format(" (model name '{}')", canonical);
}

}  // namespace

std::string WeightCheckReport::describe() const {
  std::string out = fmt::format("{} missing, {} unexpected, {} mismatched tensor(s)", missing.size(),
                                unexpected.size(), mismatched.size());
  for (const auto& line : missing) out += "\n  missing: " + line;
  for (const auto& line : unexpected) out += "\n  unexpected: " + line;
  for (const auto& line : mismatched) out += "\n  mismatch: " + line;
  return out;
}

WeightCheckReport compare_weights(const WeightSource& source, HfLayout layout,
                                  const std::map<std::string, ExpectedTensor>& expected) {
  WeightCheckReport report;
  for (const auto& [canonical, want] : expected) {
    const std::string hf_name = canonical_to_hf(canonical, layout);
    if (!source.contains(hf_name)) {
      report.missing.push_back(fmt::format("'{}'{}", hf_name, alias(hf_name, canonical)));
      continue;
    }
    const TensorEntry& have = source.entry(hf_name);
    if (have.shape != want.shape) {
      report.mismatched.push_back(fmt::format("'{}' in {}: shape {} in the checkpoint, the model expects {}",
                                              hf_name, source.file_of(hf_name), shape_str(have.shape),
                                              shape_str(want.shape)));
    }
    if (!want.dtype.empty() && have.dtype != want.dtype) {
      report.mismatched.push_back(fmt::format("'{}' in {}: dtype {} in the checkpoint, the model expects {}",
                                              hf_name, source.file_of(hf_name), have.dtype, want.dtype));
    }
  }
  for (const std::string& hf_name : source.names()) {
    const std::string canonical = hf_to_canonical(hf_name, layout);
    if (!expected.count(canonical))
      report.unexpected.push_back(fmt::format("'{}' in {}", hf_name, source.file_of(hf_name)));
  }
  return report;
}

ModelWeights ModelWeights::open_dir(const std::string& dir) {
  WeightSource source = WeightSource::open_dir(dir);
  const HfLayout layout = detect_layout(source.names(), dir);
  return ModelWeights(std::move(source), layout);
}

ModelWeights::ModelWeights(WeightSource source, HfLayout layout) : source_(std::move(source)), layout_(layout) {}

std::vector<std::string> ModelWeights::names() const {
  std::vector<std::string> out;
  for (const std::string& name : source_.names()) out.push_back(hf_to_canonical(name, layout_));
  std::sort(out.begin(), out.end());
  return out;
}

std::string ModelWeights::hf_name(const std::string& canonical) const {
  const std::string hf = canonical_to_hf(canonical, layout_);
  L4_CHECK(hf_to_canonical(hf, layout_) == canonical, "{}: '{}' is not a canonical tensor name (use '{}')",
           source_.dir(), canonical, hf_to_canonical(canonical, layout_));
  return hf;
}

bool ModelWeights::contains(const std::string& canonical) const {
  const std::string hf = canonical_to_hf(canonical, layout_);
  return hf_to_canonical(hf, layout_) == canonical && source_.contains(hf);
}
const TensorEntry& ModelWeights::entry(const std::string& canonical) const {
  return source_.entry(hf_name(canonical));
}
at::Tensor ModelWeights::load(const std::string& canonical) const { return source_.load(hf_name(canonical)); }
at::Tensor ModelWeights::load_rows(const std::string& canonical, int64_t row_begin, int64_t row_end) const {
  return source_.load_rows(hf_name(canonical), row_begin, row_end);
}

void ModelWeights::check(const std::map<std::string, ExpectedTensor>& expected) const {
  const WeightCheckReport report = compare_weights(source_, layout_, expected);
  L4_CHECK(report.ok(),
           "{}: checkpoint ({} layout) does not match the model of its config (config.json or the recipe's "
           "model): {}",
           source_.dir(), layout_name(layout_), report.describe());
}

HfLayout check_weights(const WeightSource& source, const std::map<std::string, ExpectedTensor>& expected) {
  const ModelWeights weights(source, detect_layout(source.names(), source.dir()));
  weights.check(expected);
  return weights.layout();
}

}  // namespace l4::checkpoint
