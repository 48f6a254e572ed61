// A parsed YAML (or JSON) document plus command-line overrides, read into visit()-able structs with
// every problem collected, each naming where it came from: "recipe.yaml:12: optimizer.lr: ...".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/visitor.h"

namespace l4::config {

// Collects every problem of a config so that all are reported at once.
class ConfigErrors {
 public:
  // location: "file:line" or "command line 'a.b=v'"; key_path: "optimizer.lr".
  void add(const std::string& location, const std::string& key_path, const std::string& problem);
  bool empty() const { return entries_.empty(); }
  // Messages in reading order: command-line overrides, then by line, then problems without a line.
  std::vector<std::string> messages() const;
  // Throws l4::Error whose message is every problem, one per line.
  void throw_if_any() const;

 private:
  struct Entry {
    int rank;  // 0: command line, 1: has a line, 2: no line
    long line;
    std::string message;
  };
  std::vector<Entry> entries_;
};

enum class Strictness {
  kStrict,   // our own recipes and configs: unknown keys are errors
  kLenient,  // foreign files (HF config.json): unknown keys ignored, ints accepted as bools
};

class YamlDocument {
 public:
  // Parse errors throw l4::Error "<path>:<line>:<col>: <problem>".
  static YamlDocument load_file(const std::string& path);
  static YamlDocument parse(const std::string& text, const std::string& origin);

  // "a.b.c=value": value parsed as YAML ("1e-4", "[0.9, 0.95]", "true", "text").
  void apply_override(const std::string& assignment);

  // The document below `key_path` ("model.text_config"), keeping file and line information.
  // Returns a document with a null root when the path is absent.
  YamlDocument subdocument(const std::string& key_path) const;

  bool has(const std::string& key_path) const;
  // Where a key was set: "file:line", "command line 'k=v'", or just the file when absent.
  std::string location(const std::string& key_path) const;
  const std::string& origin() const;
  // Scalar text at key_path, or "" when absent or not a scalar.
  std::string scalar(const std::string& key_path) const;

  // Reads the document into `target`; problems go to `errors`. `prefix` is prepended to key paths in
  // messages (used for subdocuments).
  template <class T>
  void read(T& target, ConfigErrors& errors, Strictness strictness, const std::string& prefix = "") const {
    auto reader = make_reader(errors, strictness, prefix);
    target.visit(*reader);
    finish_reader(*reader);
  }

  // Rewrites HF legacy keys (rope_theta / rope_scaling at the top level) into rope_parameters.
  void normalise_rope_keys();

 public:
  struct Impl;  // opaque; public so the reader in the .cpp can name it

 private:
  explicit YamlDocument(std::shared_ptr<Impl> impl);
  std::unique_ptr<FieldVisitor> make_reader(ConfigErrors& errors, Strictness strictness,
                                            const std::string& prefix) const;
  static void finish_reader(FieldVisitor& reader);

  std::shared_ptr<Impl> impl_;
};

// Emits any visit()-able struct as YAML (resolved values, defaults included).
std::unique_ptr<FieldVisitor> make_yaml_writer();
std::string finish_yaml_writer(FieldVisitor& writer);

template <class T>
std::string to_yaml(T& value) {
  auto writer = make_yaml_writer();
  value.visit(*writer);
  return finish_yaml_writer(*writer);
}

}  // namespace l4::config
