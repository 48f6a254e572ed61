// JSON text exactly as Python's json.dumps(x, ensure_ascii=False) writes it (", " and ": " separators,
// key order kept), which is what transformers' `tojson` filter produces inside chat templates.
#pragma once

#include <string>
#include <string_view>

namespace l4::tokenizer {

std::string python_json_string(std::string_view text);  // a JSON string literal
// Re-serialises a JSON document; throws l4::Error naming `what` when `json_text` is not valid JSON.
std::string python_json_dumps(std::string_view json_text, const std::string& what);

}  // namespace l4::tokenizer
