// JSON from untrusted checkpoint files (safetensors headers, weight indexes).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace l4::checkpoint {

// Parses [begin, end). Unlike plain nlohmann parsing, a key repeated within one object is an error (instead
// of silently keeping the last value), and so is nesting deeper than `max_depth`. Every problem becomes an
// l4::Error starting with `where` (the file).
nlohmann::json parse_strict_json(const std::string& where, const char* begin, const char* end, int max_depth);

// `s` fit for an error message: control bytes escaped, at most 200 bytes.
std::string printable(const std::string& s);

}  // namespace l4::checkpoint
