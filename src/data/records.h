// The record kinds `llama4 prepare` reads from JSONL lines and Parquet rows, recognised by their keys:
//
//   chat      {"messages": [{"role": "user", "content": "..."}, ...]}; content a string or a list of
//             {"type": "text", "text"} / {"type": "image", "path"} parts
//   sharegpt  {"conversations": [{"from": "human", "value": "..."}, ...]}; from human|user -> user,
//             gpt|assistant -> assistant, system, tool; an optional top-level "system" string
//   alpaca    {"instruction", "input" (optional), "output", "system" (optional)}: one user turn holding
//             the instruction, followed by a newline and the input when the input is not empty, then one
//             assistant turn holding the output
//   text      {"text": "..."}: a pretraining document
//
// A record with several of these keys is read by the first in that order (Alpaca exports that also carry
// a rendered "text" column are Alpaca). A top-level "task" string names the record's task (eval reports loss
// and exact match per task; records without one belong to their input file's task). Other top-level keys
// (ids, sources, ...) are metadata and ignored;
// inside a message every key must be known, so content is never dropped silently.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace l4::data {

enum class RecordKind { text, chat, sharegpt, alpaca };
const char* record_kind_name(RecordKind kind);
bool is_conversation(RecordKind kind);

struct ChatPart {
  bool is_image = false;
  std::string text;        // text part
  std::string image_path;  // image part, resolved against the input file's directory
};

struct ChatTurn {
  std::string role;  // system | user | assistant | tool | ipython
  std::vector<ChatPart> parts;
  bool target = true;  // assistant turns: their content is a training target (data.train_on)
};

struct Record {
  RecordKind kind = RecordKind::text;
  std::string text;             // kind text
  std::vector<ChatTurn> turns;  // the conversation kinds
  std::string task;             // optional top-level "task" string: evaluation reports per task
};

// The kind of a JSON record from its keys; an error naming the keys found when none fits.
RecordKind detect_record_kind(const nlohmann::json& j);

// Parses a record of a known kind. Errors carry no location (the caller adds file:line). Image paths are
// resolved against base_dir and must exist.
Record parse_record(const nlohmann::json& j, RecordKind kind, const std::string& base_dir);

// Every top-level key a record kind reads (a Parquet reader need not decode other columns).
const std::vector<std::string>& record_keys();

// The JSON text of one JSONL line; errors say where the syntax broke.
nlohmann::json parse_json_line(std::string_view line);

}  // namespace l4::data
