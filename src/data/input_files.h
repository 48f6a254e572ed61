// Which files `llama4 prepare` reads and how (data.format):
//   auto     by extension: .jsonl (and .json holding JSON lines) -> JSONL, .parquet -> Parquet, anything
//            else -> text; a directory stands for the .txt, .jsonl and .parquet files under it
//   text     plain text; a directory stands for the .txt files under it
//   jsonl    JSON lines, each record's kind recognised by its keys (records.h)
//   chat     JSON lines whose records are all conversations (chat, ShareGPT or Alpaca)
//   parquet  Parquet files, each row read as a record like a JSONL line
// Directories are walked recursively; their files are taken in path order, so the dataset does not depend
// on the file system's listing order.
#pragma once

#include <string>
#include <vector>

namespace l4::data {

enum class InputKind { text, jsonl, parquet };
const char* input_kind_name(InputKind kind);

struct InputFile {
  std::string path;
  InputKind kind = InputKind::text;
  bool conversations_only = false;  // format chat: a text record is an error
  bool eval_only = false;           // every record goes to the eval split (PrepareOptions::eval_inputs)
};

inline const std::vector<std::string>& format_names() {
  static const std::vector<std::string> names = {"auto", "text", "jsonl", "chat", "parquet"};
  return names;
}

// Expands directories and decides each file's kind; errors name the path (missing input, empty directory,
// a .json file holding one JSON array, an unknown format).
std::vector<InputFile> resolve_inputs(const std::vector<std::string>& inputs, const std::string& format);

}  // namespace l4::data
