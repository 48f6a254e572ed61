#include "config/hf_config_json.h"

#include <nlohmann/json.hpp>

#include <vector>

namespace l4::config {
namespace {

// Writes visit()-able structs into JSON objects with their natural types.
class JsonWriter final : public FieldVisitor {
 public:
  explicit JsonWriter(nlohmann::ordered_json& root) { stack_.push_back(&root); }

  void field(const char* key, bool& v) override { top()[key] = v; }
  void field(const char* key, int64_t& v) override { top()[key] = v; }
  void field(const char* key, double& v) override { top()[key] = v; }
  void field(const char* key, std::string& v) override {
    if (v.empty()) {
      top()[key] = nullptr;
    } else {
      top()[key] = v;
    }
  }
  void field(const char* key, std::optional<int64_t>& v) override {
    if (v) {
      top()[key] = *v;
    } else {
      top()[key] = nullptr;
    }
  }
  void field(const char* key, std::optional<double>& v) override {
    if (v) {
      top()[key] = *v;
    } else {
      top()[key] = nullptr;
    }
  }
  void field(const char* key, std::vector<int64_t>& v) override { top()[key] = v; }
  void field(const char* key, std::vector<double>& v) override { top()[key] = v; }
  void field(const char* key, std::vector<std::string>& v) override { top()[key] = v; }
  void choice(const char* key, size_t& index, const std::vector<std::string>& names) override {
    top()[key] = names.at(index);
  }
  void skip(const char*) override {}
  bool enter(const char* key) override {
    top()[key] = nlohmann::ordered_json::object();
    stack_.push_back(&top()[key]);
    return true;
  }
  void leave() override { stack_.pop_back(); }
  size_t begin_list(const char* key, size_t n) override {
    top()[key] = nlohmann::ordered_json::array();
    lists_.push_back(&top()[key]);
    return n;
  }
  void enter_item(size_t) override {
    lists_.back()->push_back(nlohmann::ordered_json::object());
    stack_.push_back(&lists_.back()->back());
  }
  void leave_item() override { stack_.pop_back(); }
  void end_list() override { lists_.pop_back(); }

 private:
  nlohmann::ordered_json& top() { return *stack_.back(); }
  std::vector<nlohmann::ordered_json*> stack_;
  std::vector<nlohmann::ordered_json*> lists_;
};

nlohmann::ordered_json text_json(const TextConfig& text) {
  nlohmann::ordered_json out;
  TextConfig copy = text;
  JsonWriter writer(out);
  copy.visit(writer);
  out["model_type"] = "llama4_text";
  return out;
}

}  // namespace

std::string model_arch_to_hf_json(const ModelArch& arch, bool text_only) {
  nlohmann::ordered_json out;
  if (text_only || !arch.vision_config) {
    out = text_json(arch.text_config);
    out["architectures"] = {"Llama4ForCausalLM"};
  } else {
    out["architectures"] = {"Llama4ForConditionalGeneration"};
    out["model_type"] = "llama4";
    out["text_config"] = text_json(arch.text_config);
    nlohmann::ordered_json vision;
    VisionConfig copy = *arch.vision_config;
    JsonWriter writer(vision);
    copy.visit(writer);
    vision["model_type"] = "llama4_vision_model";
    out["vision_config"] = vision;
    out["boi_token_index"] = arch.boi_token_index;
    out["eoi_token_index"] = arch.eoi_token_index;
    out["image_token_index"] = arch.image_token_index;
    out["tie_word_embeddings"] = false;
  }
  out["torch_dtype"] = "float32";
  return out.dump(2) + "\n";
}

}  // namespace l4::config
