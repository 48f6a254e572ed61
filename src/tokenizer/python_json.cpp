#include "tokenizer/python_json.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace l4::tokenizer {
namespace {

using ordered_json = nlohmann::ordered_json;

void dump(const ordered_json& j, std::string& out) {
  switch (j.type()) {
    case ordered_json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : j.items()) {
        if (!first) out += ", ";
        first = false;
        out += python_json_string(key);
        out += ": ";
        dump(value, out);
      }
      out += '}';
      break;
    }
    case ordered_json::value_t::array: {
      out += '[';
      for (size_t i = 0; i < j.size(); ++i) {
        if (i) out += ", ";
        dump(j[i], out);
      }
      out += ']';
      break;
    }
    case ordered_json::value_t::string:
      out += python_json_string(j.get_ref<const std::string&>());
      break;
    case ordered_json::value_t::number_float: {
      const double d = j.get<double>();
      std::string s = j.dump();  // shortest round-trip form, like Python's float repr
      if (d == static_cast<int64_t>(d) && s.find_first_of(".eE") == std::string::npos) s += ".0";
      out += s;
      break;
    }
    default:
      out += j.dump();  // null, true, false, integers
  }
}

}  // namespace

std::string python_json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string python_json_dumps(std::string_view json_text, const std::string& what) {
  ordered_json j;
  try {
    j = ordered_json::parse(json_text);
  } catch (const ordered_json::parse_error& e) {
    L4_FAIL("{}: not valid JSON: {}", what, e.what());
  }
  std::string out;
  dump(j, out);
  return out;
}

}  // namespace l4::tokenizer
