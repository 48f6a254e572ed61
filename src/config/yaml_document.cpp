#include "config/yaml_document.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"

namespace l4::config {

void ConfigErrors::add(const std::string& location, const std::string& key_path, const std::string& problem) {
  Entry entry{2, 0, fmt::format("{}: {}: {}", location, key_path, problem)};
  const size_t colon = location.rfind(':');
  if (starts_with(location, "command line")) {
    entry.rank = 0;
  } else if (colon != std::string::npos && colon + 1 < location.size() &&
             location.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    entry.rank = 1;
    entry.line = std::stol(location.substr(colon + 1));
  }
  entries_.push_back(std::move(entry));
}

std::vector<std::string> ConfigErrors::messages() const {
  std::vector<Entry> sorted = entries_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.line < b.line;
  });
  std::vector<std::string> out;
  for (const auto& e : sorted) out.push_back(e.message);
  return out;
}

void ConfigErrors::throw_if_any() const {
  if (entries_.empty()) return;
  throw Error(join(messages(), "\n"));
}

struct YamlDocument::Impl {
  std::string origin;                             // file name, for messages
  YAML::Node root;                                // the whole document
  std::map<std::string, std::string> overridden;  // key path -> "a.b=v" as typed
  std::string base_path;                          // key path of root within the original file
};

namespace {

std::string join_path(const std::string& prefix, const std::string& key) {
  if (key.empty()) return prefix;
  return prefix.empty() ? key : prefix + "." + key;
}

// Follows a dotted path without creating nodes; returns an invalid/undefined node when absent.
YAML::Node find(const YAML::Node& root, const std::string& key_path) {
  YAML::Node current = root;
  for (const auto& part : split(key_path, '.')) {
    if (!current || !current.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node next = current[part];
    if (!next) return YAML::Node(YAML::NodeType::Undefined);
    current.reset(next);
  }
  return current;
}

std::string describe(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (node.IsNull()) return "null";
  return "nothing";
}

bool parse_int(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return false;
  *out = value;
  return true;
}

bool parse_double(const std::string& text, double* out) {
  if (text.empty()) return false;
  if (text == ".inf" || text == "inf") {
    *out = INFINITY;
    return true;
  }
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == nullptr || *end != '\0') return false;
  *out = value;
  return true;
}

// Our own recipes never mean infinity or NaN ("lr: .inf" would train on garbage); foreign files may.
bool parse_number(const std::string& text, bool lenient, double* out) {
  return parse_double(text, out) && (lenient || std::isfinite(*out));
}

bool parse_bool(const std::string& text, bool lenient, bool* out) {
  static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "on"};
  static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "off"};
  if (kTrue.count(text)) return *out = true, true;
  if (kFalse.count(text)) return *out = false, true;
  int64_t number = 0;
  // HF configs carry ints as flags (attn_temperature_tuning: 4 means on).
  if (lenient && parse_int(text, &number)) return *out = number != 0, true;
  return false;
}

// yaml-cpp keeps both entries of a repeated key and lookups see only the first, so a recipe that sets
// `lr` twice would silently train with the value the user did not look at last: refuse it.
void check_duplicate_keys(const YAML::Node& node, const std::string& origin, const std::string& path) {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      check_duplicate_keys(node[i], origin, fmt::format("{}[{}]", path, i));
    }
    return;
  }
  if (!node.IsMap()) return;
  std::map<std::string, int> first_line;
  for (const auto& item : node) {
    const std::string key = item.first.IsScalar() ? item.first.Scalar() : describe(item.first);
    const std::string key_path = join_path(path, key);
    const int line = item.first.Mark().line + 1;
    const auto [it, inserted] = first_line.emplace(key, line);
    L4_CHECK(inserted, "{}:{}: {}: duplicate key (first set at {}:{})", origin, line, key_path, origin,
             it->second);
    check_duplicate_keys(item.second, origin, key_path);
  }
}

class YamlReader final : public FieldVisitor {
 public:
  YamlReader(const YamlDocument::Impl& doc, ConfigErrors& errors, Strictness strictness, std::string prefix)
      : doc_(doc), errors_(errors), lenient_(strictness == Strictness::kLenient) {
    frames_.push_back(Frame{doc.root, join_path(doc.base_path, prefix), {}});
    check_mapping(frames_.back());
  }

  void field(const char* key, bool& value) override {
    read_scalar(key, "a boolean (true/false)",
                [&](const std::string& s) { return parse_bool(s, lenient_, &value); });
  }
  void field(const char* key, int64_t& value) override {
    read_scalar(key, "an integer", [&](const std::string& s) { return parse_int(s, &value); });
  }
  void field(const char* key, double& value) override {
    read_scalar(key, lenient_ ? "a number" : "a finite number",
                [&](const std::string& s) { return parse_number(s, lenient_, &value); });
  }
  void field(const char* key, std::string& value) override {
    YAML::Node node = child(key);
    if (!node) return;
    if (node.IsNull()) return value.clear();
    if (!node.IsScalar()) return problem(key, node, "expected a string, got " + describe(node));
    value = node.Scalar();
  }
  void field(const char* key, std::optional<int64_t>& value) override {
    read_optional(key, value, "an integer");
  }
  void field(const char* key, std::optional<double>& value) override {
    read_optional(key, value, "a number");
  }
  void field(const char* key, std::vector<int64_t>& value) override {
    read_vector(key, value, "integers", [](const std::string& s, int64_t* v) { return parse_int(s, v); });
  }
  void field(const char* key, std::vector<double>& value) override {
    read_vector(key, value, "numbers",
                [this](const std::string& s, double* v) { return parse_number(s, lenient_, v); });
  }
  void field(const char* key, std::vector<std::string>& value) override {
    read_vector(key, value, "strings", [](const std::string& s, std::string* v) { return *v = s, true; });
  }

  void choice(const char* key, size_t& index, const std::vector<std::string>& names) override {
    YAML::Node node = child(key);
    if (!node) return;
    const std::string text = node.IsScalar() ? node.Scalar() : describe(node);
    const auto it = std::find(names.begin(), names.end(), text);
    if (node.IsScalar() && it != names.end()) {
      index = static_cast<size_t>(it - names.begin());
      return;
    }
    problem(
        key, node,
        fmt::format("expected one of {}, got '{}'{}", join(names, ", "), text, did_you_mean(text, names)));
  }

  void skip(const char* key) override { child(key); }

  bool enter(const char* key) override {
    YAML::Node node = child(key);
    if (!node || node.IsNull()) return false;
    frames_.push_back(Frame{node, join_path(frames_.back().path, key), {}});
    if (!check_mapping(frames_.back())) {
      frames_.pop_back();
      return false;
    }
    return true;
  }
  void leave() override { pop_frame(); }

  size_t begin_list(const char* key, size_t current_size) override {
    YAML::Node node = child(key);
    list_stack_.push_back(
        ListFrame{YAML::Node(YAML::NodeType::Undefined), join_path(frames_.back().path, key)});
    if (!node || node.IsNull()) return current_size == 0 ? 0 : current_size;
    if (!node.IsSequence()) {
      problem(key, node, "expected a list, got " + describe(node));
      return current_size;
    }
    list_stack_.back().node.reset(node);
    return node.size();
  }
  void enter_item(size_t index) override {
    const ListFrame& list = list_stack_.back();
    const std::string path = fmt::format("{}[{}]", list.path, index);
    if (!list.node) {
      frames_.push_back(Frame{YAML::Node(YAML::NodeType::Undefined), path, {}});
      return;
    }
    frames_.push_back(Frame{list.node[index], path, {}});
    check_mapping(frames_.back());
  }
  void leave_item() override { pop_frame(); }
  void end_list() override { list_stack_.pop_back(); }

  void finish() {
    while (!frames_.empty()) pop_frame();
  }

 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::vector<std::string> known;  // keys the struct asked for, for unknown-key detection
  };
  struct ListFrame {
    YAML::Node node;
    std::string path;
  };

  bool check_mapping(Frame& frame) {
    if (!frame.node || frame.node.IsNull() || frame.node.IsMap()) return true;
    errors_.add(location_of(frame.path, frame.node), frame.path.empty() ? "(top level)" : frame.path,
                "expected a mapping of keys, got " + describe(frame.node));
    frame.node.reset(YAML::Node(YAML::NodeType::Undefined));
    return false;
  }

  YAML::Node child(const char* key) {
    Frame& frame = frames_.back();
    frame.known.emplace_back(key);
    if (!frame.node || !frame.node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& map = frame.node;
    YAML::Node value = map[key];
    return value ? value : YAML::Node(YAML::NodeType::Undefined);
  }

  std::string location_of(const std::string& path, const YAML::Node& node) const {
    auto it = doc_.overridden.find(path);  // frame paths already include the document's base path
    if (it != doc_.overridden.end()) return "command line '" + it->second + "'";
    if (node && node.Mark().line >= 0) return fmt::format("{}:{}", doc_.origin, node.Mark().line + 1);
    return doc_.origin;
  }

  void problem(const char* key, const YAML::Node& node, const std::string& what) {
    const std::string path = join_path(frames_.back().path, key);
    errors_.add(location_of(path, node), path, what);
  }

  template <class Parse>
  void read_scalar(const char* key, const char* expected, Parse parse) {
    YAML::Node node = child(key);
    if (!node) return;
    if (node.IsNull()) {
      if (!lenient_) problem(key, node, std::string("expected ") + expected + ", got null");
      return;
    }
    if (!node.IsScalar() || !parse(node.Scalar())) {
      problem(key, node, std::string("expected ") + expected + ", got " + describe(node));
    }
  }

  template <class T>
  void read_optional(const char* key, std::optional<T>& value, const char* expected) {
    YAML::Node node = child(key);
    if (!node) return;
    if (node.IsNull()) return value.reset();
    bool ok = false;
    if (node.IsScalar()) {
      if constexpr (std::is_same_v<T, int64_t>) {
        int64_t v = 0;
        ok = parse_int(node.Scalar(), &v);
        if (ok) value = v;
      } else {
        double v = 0;
        ok = parse_number(node.Scalar(), lenient_, &v);
        if (ok) value = v;
      }
    }
    if (!ok) problem(key, node, std::string("expected ") + expected + " or null, got " + describe(node));
  }

  template <class T, class Parse>
  void read_vector(const char* key, std::vector<T>& value, const char* expected, Parse parse) {
    YAML::Node node = child(key);
    if (!node) return;
    if (node.IsNull()) return value.clear();
    std::vector<T> out;
    auto take = [&](const YAML::Node& item) {
      T v{};
      if (!item.IsScalar() || !parse(item.Scalar(), &v)) {
        problem(key, item,
                std::string("expected a list of ") + expected + ", got " + describe(item) + " in it");
        return false;
      }
      out.push_back(v);
      return true;
    };
    if (node.IsScalar()) {
      // A single value where a list is expected (HF's eos_token_id: 1 or [1, 2]).
      if (take(node)) value = std::move(out);
      return;
    }
    if (!node.IsSequence())
      return problem(key, node, std::string("expected a list of ") + expected + ", got " + describe(node));
    for (const auto& item : node) {
      if (!take(item)) return;
    }
    value = std::move(out);
  }

  void pop_frame() {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    if (lenient_ || !frame.node || !frame.node.IsMap()) return;
    for (const auto& entry : frame.node) {
      const std::string key = entry.first.Scalar();
      if (std::find(frame.known.begin(), frame.known.end(), key) != frame.known.end()) continue;
      const std::string path = join_path(frame.path, key);
      errors_.add(location_of(path, entry.first), path, "unknown key" + did_you_mean(key, frame.known));
    }
  }

  const YamlDocument::Impl& doc_;
  ConfigErrors& errors_;
  bool lenient_;
  std::vector<Frame> frames_;
  std::vector<ListFrame> list_stack_;
};

std::string format_double(double value) {
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // keep it visibly a float
  return text;
}

class YamlWriter final : public FieldVisitor {
 public:
  YamlWriter() { out_ << YAML::BeginMap; }

  void field(const char* key, bool& value) override { out_ << YAML::Key << key << YAML::Value << value; }
  void field(const char* key, int64_t& value) override { out_ << YAML::Key << key << YAML::Value << value; }
  void field(const char* key, double& value) override {
    out_ << YAML::Key << key << YAML::Value << format_double(value);
  }
  void field(const char* key, std::string& value) override {
    out_ << YAML::Key << key << YAML::Value;
    if (value.empty()) {
      out_ << YAML::Null;
    } else {
      out_ << value;
    }
  }
  void field(const char* key, std::optional<int64_t>& value) override {
    out_ << YAML::Key << key << YAML::Value;
    if (value) {
      out_ << *value;
    } else {
      out_ << YAML::Null;
    }
  }
  void field(const char* key, std::optional<double>& value) override {
    out_ << YAML::Key << key << YAML::Value;
    if (value) {
      out_ << format_double(*value);
    } else {
      out_ << YAML::Null;
    }
  }
  void field(const char* key, std::vector<int64_t>& value) override {
    flow_list(key, value, [](int64_t v) { return std::to_string(v); });
  }
  void field(const char* key, std::vector<double>& value) override { flow_list(key, value, format_double); }
  void field(const char* key, std::vector<std::string>& value) override {
    flow_list(key, value, [](const std::string& v) { return v; });
  }

  void choice(const char* key, size_t& index, const std::vector<std::string>& names) override {
    out_ << YAML::Key << key << YAML::Value << names.at(index);
  }

  void skip(const char*) override {}

  bool enter(const char* key) override {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    return true;
  }
  void leave() override { out_ << YAML::EndMap; }
  size_t begin_list(const char* key, size_t current_size) override {
    out_ << YAML::Key << key << YAML::Value;
    if (current_size == 0) out_ << YAML::Flow;
    out_ << YAML::BeginSeq;
    return current_size;
  }
  void enter_item(size_t) override { out_ << YAML::Flow << YAML::BeginMap; }
  void leave_item() override { out_ << YAML::EndMap; }
  void end_list() override { out_ << YAML::EndSeq; }

  std::string finish() {
    out_ << YAML::EndMap;
    return std::string(out_.c_str()) + "\n";
  }

 private:
  template <class T, class Format>
  void flow_list(const char* key, const std::vector<T>& values, Format format) {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& v : values) out_ << format(v);
    out_ << YAML::EndSeq;
  }

  YAML::Emitter out_;
};

}  // namespace

YamlDocument::YamlDocument(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

YamlDocument YamlDocument::load_file(const std::string& path) {
  L4_CHECK(file_exists(path), "{}: no such file", path);
  L4_CHECK(!is_directory(path), "{}: is a directory, expected a YAML or JSON file", path);
  return parse(read_file(path), path);
}

YamlDocument YamlDocument::parse(const std::string& text, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  try {
    impl->root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    L4_FAIL("{}:{}:{}: malformed YAML: {}", origin, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (!impl->root || impl->root.IsNull()) impl->root = YAML::Node(YAML::NodeType::Map);
  check_duplicate_keys(impl->root, origin, "");
  return YamlDocument(std::move(impl));
}

void YamlDocument::apply_override(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  L4_CHECK(eq != std::string::npos && eq > 0, "command line '{}': expected key.path=value", assignment);
  const std::string key_path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    L4_FAIL("command line '{}': value is not valid YAML: {}", assignment, e.msg);
  }
  if (!value) value = YAML::Node(text);
  const auto parts = split(key_path, '.');
  YAML::Node current = impl_->root;
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    L4_CHECK(!parts[i].empty(), "command line '{}': empty key in '{}'", assignment, key_path);
    L4_CHECK(!current || current.IsMap() || current.IsNull(),
             "command line '{}': '{}' is not a mapping, cannot set '{}' inside it", assignment, walked,
             parts[i]);
    walked = join_path(walked, parts[i]);
    if (i + 1 == parts.size()) {
      current[parts[i]] = value;
    } else {
      YAML::Node next = current[parts[i]];
      current.reset(next);
    }
  }
  impl_->overridden[key_path] = assignment;
}

YamlDocument YamlDocument::subdocument(const std::string& key_path) const {
  auto impl = std::make_shared<Impl>(*impl_);
  // reset(), not assignment: the copied node still refers to the parent's tree, and assigning to it
  // would overwrite the parent's root.
  YAML::Node sub = find(impl_->root, key_path);
  impl->root.reset(sub ? sub : YAML::Node(YAML::NodeType::Null));
  impl->base_path = join_path(impl_->base_path, key_path);
  return YamlDocument(std::move(impl));
}

bool YamlDocument::has(const std::string& key_path) const {
  YAML::Node node = find(impl_->root, key_path);
  return node && !node.IsNull();
}

std::string YamlDocument::location(const std::string& key_path) const {
  const std::string full = join_path(impl_->base_path, key_path);
  auto it = impl_->overridden.find(full);
  if (it != impl_->overridden.end()) return "command line '" + it->second + "'";
  YAML::Node node = find(impl_->root, key_path);
  if (node && node.Mark().line >= 0) return fmt::format("{}:{}", impl_->origin, node.Mark().line + 1);
  return impl_->origin;
}

const std::string& YamlDocument::origin() const {
  return impl_->origin;
}

std::string YamlDocument::scalar(const std::string& key_path) const {
  YAML::Node node = find(impl_->root, key_path);
  return (node && node.IsScalar()) ? node.Scalar() : std::string();
}

void YamlDocument::normalise_rope_keys() {
  YAML::Node& root = impl_->root;
  if (!root.IsMap() || root["rope_parameters"]) return;
  YAML::Node params(YAML::NodeType::Map);
  bool any = false;
  if (root["rope_scaling"] && root["rope_scaling"].IsMap()) {
    for (const auto& entry : root["rope_scaling"]) params[entry.first.Scalar()] = entry.second;
    if (params["type"] && !params["rope_type"]) params["rope_type"] = params["type"];
    params.remove("type");
    any = true;
  }
  if (root["rope_theta"]) {
    params["rope_theta"] = root["rope_theta"];
    any = true;
  }
  root.remove("rope_scaling");
  root.remove("rope_theta");
  if (any) root["rope_parameters"] = params;
}

std::unique_ptr<FieldVisitor> YamlDocument::make_reader(ConfigErrors& errors, Strictness strictness,
                                                        const std::string& prefix) const {
  return std::make_unique<YamlReader>(*impl_, errors, strictness, prefix);
}

void YamlDocument::finish_reader(FieldVisitor& reader) {
  static_cast<YamlReader&>(reader).finish();
}

std::unique_ptr<FieldVisitor> make_yaml_writer() {
  return std::make_unique<YamlWriter>();
}

std::string finish_yaml_writer(FieldVisitor& writer) {
  return static_cast<YamlWriter&>(writer).finish();
}

}  // namespace l4::config
