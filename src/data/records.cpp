#include "data/records.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/strings.h"

namespace l4::data {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kRoles = {"system", "user", "assistant", "tool", "ipython"};

// Null counts as absent: Parquet writes a missing optional field as null.
bool present(const nlohmann::json& j, const char* key) {
  return j.contains(key) && !j[key].is_null();
}

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  L4_CHECK(present(j, key), "{}\"{}\" is missing", where, key);
  L4_CHECK(j[key].is_string(), "{}\"{}\" must be a string, got {}", where, key, j[key].type_name());
  return j[key].get<std::string>();
}

void check_keys(const nlohmann::json& obj, const std::vector<std::string>& allowed,
                const std::string& where) {
  for (const auto& item : obj.items()) {
    L4_CHECK(std::find(allowed.begin(), allowed.end(), item.key()) != allowed.end(),
             "{}: unknown key '{}' (expected {}){}", where, item.key(), join(allowed, ", "),
             did_you_mean(item.key(), allowed));
  }
}

std::vector<ChatPart> parse_content(const nlohmann::json& content, const std::string& where,
                                    const std::string& role, const fs::path& base_dir) {
  std::vector<ChatPart> parts;
  if (content.is_string()) {
    parts.push_back({false, content.get<std::string>(), ""});
    return parts;
  }
  L4_CHECK(content.is_array(), "{}.content: expected a string or a list of parts", where);
  for (size_t p = 0; p < content.size(); ++p) {
    const nlohmann::json& part = content[p];
    const std::string at = fmt::format("{}.content[{}]", where, p);
    L4_CHECK(part.is_object() && part.contains("type") && part["type"].is_string(),
             "{}: expected an object with a string \"type\"", at);
    const std::string type = part["type"].get<std::string>();
    if (type == "text") {
      check_keys(part, {"type", "text"}, at);
      L4_CHECK(part.contains("text") && part["text"].is_string(), "{}: a text part needs a string \"text\"",
               at);
      parts.push_back({false, part["text"].get<std::string>(), ""});
    } else if (type == "image") {
      check_keys(part, {"type", "path", "image"}, at);
      const char* key = part.contains("path") ? "path" : "image";
      L4_CHECK(part.contains(key) && part[key].is_string(), "{}: an image part needs a string \"path\"", at);
      const std::string rel = part[key].get<std::string>();
      const fs::path resolved = (base_dir / rel).lexically_normal();
      L4_CHECK(fs::is_regular_file(resolved), "{}: image '{}' not found ({})", at, rel, resolved.string());
      L4_CHECK(role != "assistant", "{}: images in assistant messages are not supported", where);
      parts.push_back({true, "", resolved.string()});
    } else {
      L4_FAIL("{}: unknown part type '{}' (expected text or image)", at, type);
    }
  }
  return parts;
}

std::vector<ChatTurn> parse_messages(const nlohmann::json& messages, const fs::path& base_dir) {
  L4_CHECK(messages.is_array() && !messages.empty(), "expected an object with a non-empty list \"messages\"");
  std::vector<ChatTurn> turns;
  for (size_t m = 0; m < messages.size(); ++m) {
    const nlohmann::json& msg = messages[m];
    const std::string where = fmt::format("messages[{}]", m);
    L4_CHECK(msg.is_object() && msg.contains("role") && msg["role"].is_string(),
             "{}: expected an object with a string \"role\"", where);
    check_keys(msg, {"role", "content"}, where);
    ChatTurn turn;
    turn.role = msg["role"].get<std::string>();
    L4_CHECK(std::find(kRoles.begin(), kRoles.end(), turn.role) != kRoles.end(),
             "{}: unknown role '{}' (expected system, user, assistant, tool or ipython)", where, turn.role);
    L4_CHECK(present(msg, "content"), "{}: \"content\" is missing", where);
    turn.parts = parse_content(msg["content"], where, turn.role, base_dir);
    turns.push_back(std::move(turn));
  }
  return turns;
}

std::string sharegpt_role(const std::string& from, const std::string& where) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant") return "assistant";
  if (from == "system" || from == "tool") return from;
  L4_FAIL("{}: unknown \"from\" '{}' (expected human, gpt, system or tool; user and assistant also work)",
          where, from);
}

std::vector<ChatTurn> parse_sharegpt(const nlohmann::json& j) {
  const nlohmann::json& conv = j["conversations"];
  L4_CHECK(conv.is_array() && !conv.empty(), "expected a non-empty list \"conversations\"");
  L4_CHECK(!present(j, "image") && !present(j, "images"),
           "images in ShareGPT records are not supported: write chat \"messages\" with image parts");
  std::vector<ChatTurn> turns;
  if (present(j, "system")) turns.push_back({"system", {{false, string_field(j, "system", ""), ""}}, true});
  for (size_t m = 0; m < conv.size(); ++m) {
    const nlohmann::json& msg = conv[m];
    const std::string where = fmt::format("conversations[{}]", m);
    L4_CHECK(msg.is_object(), "{}: expected an object with \"from\" and \"value\"", where);
    check_keys(msg, {"from", "value"}, where);
    ChatTurn turn;
    turn.role = sharegpt_role(string_field(msg, "from", where + ": "), where);
    turn.parts.push_back({false, string_field(msg, "value", where + ": "), ""});
    turns.push_back(std::move(turn));
  }
  return turns;
}

std::vector<ChatTurn> parse_alpaca(const nlohmann::json& j) {
  L4_CHECK(!present(j, "history"),
           "Alpaca \"history\" is not supported: write the turns as chat \"messages\"");
  std::string user = string_field(j, "instruction", "");
  if (present(j, "input")) {
    const std::string input = string_field(j, "input", "");
    if (!input.empty()) user += "\n" + input;
  }
  std::vector<ChatTurn> turns;
  if (present(j, "system")) turns.push_back({"system", {{false, string_field(j, "system", ""), ""}}, true});
  turns.push_back({"user", {{false, user, ""}}, true});
  turns.push_back({"assistant", {{false, string_field(j, "output", ""), ""}}, true});
  return turns;
}

}  // namespace

const char* record_kind_name(RecordKind kind) {
  switch (kind) {
    case RecordKind::text:
      return "text";
    case RecordKind::chat:
      return "chat";
    case RecordKind::sharegpt:
      return "sharegpt";
    case RecordKind::alpaca:
      return "alpaca";
  }
  return "?";
}

const std::vector<std::string>& record_keys() {
  static const std::vector<std::string> keys = {"messages", "conversations", "instruction", "input",
                                                "output",   "system",        "history",     "text",
                                                "image",    "images",        "task"};
  return keys;
}

bool is_conversation(RecordKind kind) {
  return kind != RecordKind::text;
}

RecordKind detect_record_kind(const nlohmann::json& j) {
  L4_CHECK(j.is_object(), "expected a JSON object, got {}", j.type_name());
  if (j.contains("messages")) return RecordKind::chat;
  if (j.contains("conversations")) return RecordKind::sharegpt;
  if (j.contains("instruction") || j.contains("output")) return RecordKind::alpaca;
  if (j.contains("text")) return RecordKind::text;
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back("'" + item.key() + "'");
  L4_FAIL(
      "expected a record with \"messages\" (chat), \"conversations\" (ShareGPT), \"instruction\"/\"output\" "
      "(Alpaca) or \"text\"; found {}",
      keys.empty() ? std::string("no keys") : join(keys, ", "));
}

Record parse_record(const nlohmann::json& j, RecordKind kind, const std::string& base_dir) {
  L4_CHECK(j.is_object(), "expected a JSON object, got {}", j.type_name());
  Record r;
  r.kind = kind;
  if (j.contains("task") && !j["task"].is_null()) {
    L4_CHECK(j["task"].is_string() && !j["task"].get<std::string>().empty(),
             "\"task\" must be a non-empty string (the record's task name), got {}", j["task"].dump());
    r.task = j["task"].get<std::string>();
  }
  switch (kind) {
    case RecordKind::text:
      L4_CHECK(j.contains("text") && j["text"].is_string(),
               "expected an object with a string field \"text\"");
      r.text = j["text"].get<std::string>();
      break;
    case RecordKind::chat:
      L4_CHECK(j.contains("messages"), "expected an object with a non-empty list \"messages\"");
      r.turns = parse_messages(j["messages"], base_dir);
      break;
    case RecordKind::sharegpt:
      L4_CHECK(j.contains("conversations"), "expected an object with a non-empty list \"conversations\"");
      r.turns = parse_sharegpt(j);
      break;
    case RecordKind::alpaca:
      r.turns = parse_alpaca(j);
      break;
  }
  return r;
}

nlohmann::json parse_json_line(std::string_view line) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    const auto p = what.find("parse error");
    L4_FAIL("invalid JSON: {}", p == std::string::npos ? what : what.substr(p));
  }
}

}  // namespace l4::data
