// One description of each config struct serves reading, writing and validation: every struct has
//   template <class V> void visit(V& v) { v("key", field); v.section("sub", sub); v.list("items", items); }
// and a FieldVisitor implementation decides what happens to each field (read from YAML, emit YAML, ...).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace l4::config {

// Option enums: an overload `const std::vector<std::string>& enum_names(E)` (found by argument-dependent
// lookup, see config/options.h) gives the names of E's values, indexed by the enumerator (0, 1, ...). One
// table per enum serves every visitor: reading (with "expected one of ..." and did-you-mean) and printing.

class FieldVisitor {
 public:
  virtual ~FieldVisitor() = default;

  virtual void field(const char* key, bool& value) = 0;
  virtual void field(const char* key, int64_t& value) = 0;
  virtual void field(const char* key, double& value) = 0;
  virtual void field(const char* key, std::string& value) = 0;
  virtual void field(const char* key, std::optional<int64_t>& value) = 0;
  virtual void field(const char* key, std::optional<double>& value) = 0;
  virtual void field(const char* key, std::vector<int64_t>& value) = 0;
  virtual void field(const char* key, std::vector<double>& value) = 0;
  virtual void field(const char* key, std::vector<std::string>& value) = 0;

  // An enum option: `index` into `names` (enum_names(E)).
  virtual void choice(const char* key, size_t& index, const std::vector<std::string>& names) = 0;

  // Marks `key` as known without reading it (it is read elsewhere, e.g. an inline architecture).
  virtual void skip(const char* key) = 0;

  // Sections: enter() returns false when the visitor has nothing to do inside (e.g. absent in the file).
  virtual bool enter(const char* key) = 0;
  virtual void leave() = 0;
  // Lists of sections: begin_list() returns the number of items to visit (resizing is the caller's job).
  virtual size_t begin_list(const char* key, size_t current_size) = 0;
  virtual void enter_item(size_t index) = 0;
  virtual void leave_item() = 0;
  virtual void end_list() = 0;

  template <class T>
  void operator()(const char* key, T& value) {
    if constexpr (std::is_enum_v<T>) {
      auto index = static_cast<size_t>(value);
      choice(key, index, enum_names(value));
      value = static_cast<T>(index);
    } else {
      field(key, value);
    }
  }

  template <class T>
  void section(const char* key, T& value) {
    if (enter(key)) {
      value.visit(*this);
      leave();
    }
  }

  template <class T>
  void list(const char* key, std::vector<T>& items) {
    const size_t n = begin_list(key, items.size());
    items.resize(n);
    for (size_t i = 0; i < n; ++i) {
      enter_item(i);
      items[i].visit(*this);
      leave_item();
    }
    end_list();
  }
};

}  // namespace l4::config
