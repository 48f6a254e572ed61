#include "restore/streaming_merge.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "checkpoint/hf_model_dir.h"
#include "checkpoint/model_weights.h"
#include "checkpoint/name_mapping.h"
#include "checkpoint/peft_format.h"
#include "checkpoint/weight_source.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/staged_output_dir.h"
#include "core/strings.h"
#include "lora/lora_modules.h"
#include "model/weights.h"
#include "restore/sharded_writer.h"

namespace l4::restore {
namespace {

namespace fs = std::filesystem;
using checkpoint::HfLayout;

const std::string kPrefix = checkpoint::kPeftPrefix;
const std::string kLoraA = "lora_A.weight", kLoraB = "lora_B.weight";
constexpr int64_t kPieceBytes = 32LL << 20;

// What replaces one base tensor.
struct Change {
  enum Kind { kLinearDelta, kExpertDelta, kReplace } kind;
  std::string a_key, b_key;  // LoRA factors, or (kReplace) the adapter's tensor in a_key
};

struct MergePlan {
  std::map<std::string, Change> changes;  // base HF name -> change
};

class PlanBuilder {
 public:
  PlanBuilder(const checkpoint::WeightSource& base, const checkpoint::PeftAdapterFiles& adapter)
      : base_(base), adapter_(adapter), file_(*adapter.weights) {
    base_layout_ = checkpoint::detect_layout(base.names(), base.dir());
    // The layout the adapter was written for (a text-only adapter adapts a multimodal base's language model).
    for (const auto& e : file_.entries())
      if (starts_with(e.name, kPrefix + "language_model."))
        adapter_layout_ = HfLayout::kConditionalGeneration;
    for (const auto& t : adapter.config.target_parameters)
      expert_targets_.push_back(checkpoint::hf_to_canonical(t, adapter_layout_));
    for (const auto& e : file_.entries()) unused_.insert(e.name);
  }

  MergePlan build() {
    for (const auto& e : file_.entries()) {
      if (!starts_with(e.name, kPrefix) || !ends_with(e.name, kLoraA)) continue;
      const std::string module =
          e.name.substr(kPrefix.size(), e.name.size() - kPrefix.size() - kLoraA.size());
      if (ends_with(module, "experts.") || ends_with(module, "experts.base_layer.")) {
        add_expert(e.name, module);
      } else {
        add_linear(module.substr(0, module.size() - 1));  // drop the '.' before lora_A
      }
    }
    for (const std::string& name : adapter_.config.modules_to_save) add_saved_module(name);
    L4_CHECK(unused_.empty(), "{}: {} tensor(s) match no targeted layer of {}, e.g. '{}'", file_.path(),
             unused_.size(), base_.dir(), unused_.empty() ? "" : *unused_.begin());
    return std::move(plan_);
  }

 private:
  // The base tensor a name of the adapter's layout stands for.
  std::string base_name(const std::string& adapter_hf_name, const std::string& key) const {
    const std::string name = checkpoint::canonical_to_hf(
        checkpoint::hf_to_canonical(adapter_hf_name, adapter_layout_), base_layout_);
    L4_CHECK(base_.contains(name), "{}: '{}' adapts '{}', which {} does not have", file_.path(), key, name,
             base_.dir());
    L4_CHECK(!plan_.changes.count(name), "{}: '{}' adapts '{}' a second time", file_.path(), key, name);
    return name;
  }

  const checkpoint::TensorEntry& take(const std::string& key) {
    L4_CHECK(file_.contains(key), "{}: missing tensor '{}'", file_.path(), key);
    unused_.erase(key);
    return file_.entry(key);
  }

  void expect_shape(const std::string& key, const std::vector<int64_t>& got,
                    const std::vector<int64_t>& want) {
    L4_CHECK(got == want, "{}: tensor '{}' has shape {}, expected {}", file_.path(), key,
             c10::str(at::IntArrayRef(got)), c10::str(at::IntArrayRef(want)));
  }

  void add_linear(const std::string& module) {
    const std::string a_key = kPrefix + module + "." + kLoraA, b_key = kPrefix + module + "." + kLoraB;
    const std::string name = base_name(module + ".weight", a_key);
    const auto& w = base_.entry(name);
    const auto &a = take(a_key), &b = take(b_key);
    L4_CHECK(w.shape.size() == 2, "{}: '{}' adapts '{}' of shape {}, which is not a linear weight",
             file_.path(), a_key, name, c10::str(at::IntArrayRef(w.shape)));
    const int64_t r = adapter_.config.rank;
    expect_shape(a_key, a.shape, {r, w.shape[1]});
    expect_shape(b_key, b.shape, {w.shape[0], r});
    plan_.changes[name] = {Change::kLinearDelta, a_key, b_key};
  }

  // PEFT nests the wrappers of one experts module in target_parameters order, gate_up_proj first when both
  // are targeted: gate_up_proj's factors sit under "experts.base_layer.", down_proj's under "experts."
  // (as lora/peft_adapter.h writes them).
  void add_expert(const std::string& a_key, const std::string& module_with_dot) {
    const bool nested = ends_with(module_with_dot, "base_layer.");
    const std::string experts = module_with_dot.substr(
        0, module_with_dot.size() - (nested ? std::string("base_layer.").size() : 0) - 1);
    const std::string canonical = checkpoint::hf_to_canonical(experts, adapter_layout_);
    auto targeted = [&](const char* param) {
      for (const auto& t : expert_targets_)
        if (lora::target_matches(t, canonical + "." + param, true)) return true;
      return false;
    };
    const bool gate_up = targeted("gate_up_proj"), down = targeted("down_proj");
    const char* param = nullptr;
    if (gate_up && down)
      param = nested ? "gate_up_proj" : "down_proj";
    else if (!nested && (gate_up || down))
      param = gate_up ? "gate_up_proj" : "down_proj";
    L4_CHECK(param != nullptr, "{}: tensor '{}' matches no expert parameter that target_parameters names",
             file_.path(), a_key);
    const std::string prefix = kPrefix + module_with_dot;
    const std::string name = base_name(experts + "." + param, a_key);
    const auto& w = base_.entry(name);  // [E, in, out]
    L4_CHECK(w.shape.size() == 3, "{}: '{}' adapts '{}' of shape {}, which is not an expert tensor",
             file_.path(), a_key, name, c10::str(at::IntArrayRef(w.shape)));
    const int64_t r = adapter_.config.rank, e = w.shape[0];
    expect_shape(prefix + kLoraA, take(prefix + kLoraA).shape, {e * r, w.shape[2]});
    expect_shape(prefix + kLoraB, take(prefix + kLoraB).shape, {w.shape[1], r * e});
    plan_.changes[name] = {Change::kExpertDelta, prefix + kLoraA, prefix + kLoraB};
  }

  void add_saved_module(const std::string& module) {
    L4_CHECK(module == "vision_model" || module == "multi_modal_projector",
             "{}: modules_to_save names '{}'; only vision_model and multi_modal_projector are supported",
             adapter_.config_path, module);
    L4_CHECK(base_layout_ == HfLayout::kConditionalGeneration,
             "{}: the adapter carries the trained {} (modules_to_save) of a multimodal model, but {} is "
             "text-only: merge it into a multimodal (Llama4ForConditionalGeneration) base, or use `llama4 "
             "export` on the run's checkpoint",
             adapter_.config_path, module, base_.dir());
    const std::string key_prefix = kPrefix + module + ".";
    for (const auto& e : file_.entries()) {
      if (!starts_with(e.name, key_prefix)) continue;
      const std::string name = base_name(e.name.substr(kPrefix.size()), e.name);
      expect_shape(e.name, e.shape, base_.entry(name).shape);
      take(e.name);
      plan_.changes[name] = {Change::kReplace, e.name, ""};
    }
    for (const std::string& name : base_.names()) {
      L4_CHECK(!starts_with(name, module + ".") || plan_.changes.count(name),
               "{}: modules_to_save has {}, but the adapter lacks its tensor '{}{}'", adapter_.config_path,
               module, kPrefix, name);
    }
  }

  const checkpoint::WeightSource& base_;
  const checkpoint::PeftAdapterFiles& adapter_;
  const checkpoint::SafetensorsFile& file_;
  HfLayout base_layout_ = HfLayout::kCausalLM, adapter_layout_ = HfLayout::kCausalLM;
  std::vector<std::string> expert_targets_;
  std::set<std::string> unused_;
  MergePlan plan_;
};

}  // namespace

void merge_peft_streamed(const std::string& model_dir, const std::string& adapter_dir,
                         const std::string& output, int64_t max_shard_bytes, bool overwrite,
                         const std::string& tokenizer) {
  check_output_outside(output, model_dir, "the base model directory");
  check_output_outside(output, adapter_dir, "the adapter directory");
  check_output_replaceable(output, overwrite, "--output");
  const checkpoint::WeightSource base = checkpoint::WeightSource::open_dir(model_dir);
  // The merged directory keeps the base's config.json: its weights must be the ones that config describes
  // (names and shapes; checked on the meta device, nothing read), or the output would not load anywhere.
  const config::ModelArch arch = config::load_model_arch(model_dir);
  model::check_weights(arch, arch.vision_config.has_value(), checkpoint::ModelWeights::open_dir(model_dir));
  const checkpoint::PeftAdapterFiles adapter = checkpoint::read_peft_adapter(adapter_dir);
  const MergePlan plan = PlanBuilder(base, adapter).build();
  lora::LoraOptions options;
  options.rank = adapter.config.rank;
  options.alpha = adapter.config.alpha;
  options.rslora = adapter.config.rslora;
  const double scale = options.scale();
  const checkpoint::SafetensorsFile& file = *adapter.weights;

  std::vector<PlannedTensor> tensors;
  for (const std::string& name : base.names()) {
    const checkpoint::TensorEntry& e = base.entry(name);
    tensors.push_back({name, e.dtype, e.shape});
  }
  // Tensors go out in pieces of about kPieceBytes in float32 (row blocks of the tensor seen as a matrix
  // [numel / last dim, last dim]), so memory does not grow with the largest tensor (a Scout expert tensor
  // is ~2.7 GB in bf16).
  auto produce = [&](const PlannedTensor& t, const TensorSink& sink) {
    const auto it = plan.changes.find(t.name);
    const c10::ScalarType dtype = checkpoint::scalar_type_of(t.dtype);
    if (it != plan.changes.end() && it->second.kind == Change::kReplace) {
      sink(file.load(it->second.a_key).to(dtype));  // the adapter holds it whole already
      return;
    }
    if (t.shape.size() < 2) {  // norms and scalars: small, never adapted
      sink(base.load(t.name));
      return;
    }
    const int64_t cols = t.shape.back(), rows = cols == 0 ? 0 : base.entry(t.name).numel() / cols;
    const int64_t step = std::max<int64_t>(1, kPieceBytes / (4 * std::max<int64_t>(cols, 1)));
    if (it == plan.changes.end()) {  // the stored bytes, unchanged
      for (int64_t r0 = 0; r0 < rows; r0 += step)
        sink(base.load_matrix_rows(t.name, r0, std::min(rows, r0 + step)));
      return;
    }
    const Change& change = it->second;
    const at::Tensor a = file.load(change.a_key).to(at::kFloat), b = file.load(change.b_key).to(at::kFloat);
    // Rows [r0, r1) of the merged matrix: base rows in float32 plus b_rows @ a, cast back to the base dtype.
    auto merge_rows = [&](int64_t r0, int64_t r1, const at::Tensor& b_rows, const at::Tensor& a_matrix) {
      at::Tensor w = base.load_matrix_rows(t.name, r0, r1).to(at::kFloat);
      sink(w.add_(b_rows.matmul(a_matrix), scale).to(dtype));
    };
    if (change.kind == Change::kLinearDelta) {  // W [out, in] = B [out, r] @ A [r, in]
      for (int64_t r0 = 0; r0 < rows; r0 += step) {
        const int64_t r1 = std::min(rows, r0 + step);
        merge_rows(r0, r1, b.slice(0, r0, r1), a);
      }
      return;
    }
    // Experts W [E, in, out]; PEFT's layout: A [E*r, out], B [in, r*E] (column j = rank j / E, expert j % E).
    const int64_t experts = t.shape[0], in = t.shape[1], r = options.rank;
    const at::Tensor a3 = a.view({experts, r, cols}), b3 = b.view({in, r, experts}).permute({2, 0, 1});
    for (int64_t e = 0; e < experts; ++e) {
      for (int64_t i0 = 0; i0 < in; i0 += step) {
        const int64_t i1 = std::min(in, i0 + step);
        merge_rows(e * in + i0, e * in + i1, b3[e].slice(0, i0, i1), a3[e]);
      }
    }
  };
  StagedOutputDir staged(output, overwrite, "--output");
  const std::string& output_dir = staged.staging();
  write_sharded_model(output_dir, tensors, produce, max_shard_bytes);
  write_file_atomic((fs::path(output_dir) / "config.json").string(),
                    read_file((fs::path(model_dir) / "config.json").string()));
  checkpoint::copy_tokenizer_files(tokenizer.empty() ? model_dir : tokenizer, output_dir);
  L4_LOG_INFO("merged {} ({} tensors changed) into {} ({} tensors) in {}", adapter_dir, plan.changes.size(),
              model_dir, tensors.size(), output);
  staged.commit();
}

}  // namespace l4::restore
