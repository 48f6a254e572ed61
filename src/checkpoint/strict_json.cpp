#include "checkpoint/strict_json.h"

#include <set>
#include <vector>

#include "core/error.h"

namespace l4::checkpoint {

using json = nlohmann::json;

std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 200; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 200) out += "...";
  return out;
}

json parse_strict_json(const std::string& where, const char* begin, const char* end, int max_depth) {
  std::vector<std::set<std::string>> keys;  // keys seen in each open object
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        L4_CHECK(depth < max_depth, "{}: JSON nests deeper than {} levels", where, max_depth);
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          L4_FAIL("{}: the key '{}' appears twice in one JSON object{}", where, printable(parsed.get<std::string>()),
                  keys.size() == 1 ? " (duplicate tensor name)" : "");
        }
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    L4_FAIL("{}: not valid JSON: {}", where, e.what());
  }
}

}  // namespace l4::checkpoint
