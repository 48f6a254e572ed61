#include "data/input_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/strings.h"

namespace l4::data {
namespace fs = std::filesystem;

namespace {

std::string extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// A .json file is read as JSON lines when it starts with an object; a single JSON array (the other common
// layout) is refused with the command that converts it.
void check_json_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  L4_CHECK(in.good(), "{}: cannot read input file", path);
  char c = 0;
  while (in.get(c) && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
  }
  L4_CHECK(!in || c != '[',
           "{}: a JSON array, not JSON lines (one record per line); convert it with: jq -c '.[]' {} > {}l",
           path, path, path);
}

std::vector<std::string> extensions_for(const std::string& format) {
  if (format == "text") return {".txt"};
  if (format == "jsonl" || format == "chat") return {".jsonl"};
  if (format == "parquet") return {".parquet"};
  return {".txt", ".jsonl", ".parquet"};
}

InputFile classify(const std::string& path, const std::string& format) {
  InputFile f;
  f.path = path;
  const std::string ext = extension(path);
  if (format == "text") {
    f.kind = InputKind::text;
  } else if (format == "jsonl" || format == "chat") {
    f.kind = InputKind::jsonl;
    f.conversations_only = format == "chat";
  } else if (format == "parquet") {
    f.kind = InputKind::parquet;
  } else if (ext == ".jsonl" || ext == ".json") {
    if (ext == ".json") check_json_lines(path);
    f.kind = InputKind::jsonl;
  } else if (ext == ".parquet") {
    f.kind = InputKind::parquet;
  } else {
    f.kind = InputKind::text;
  }
  return f;
}

}  // namespace

const char* input_kind_name(InputKind kind) {
  switch (kind) {
    case InputKind::text:
      return "text";
    case InputKind::jsonl:
      return "jsonl";
    case InputKind::parquet:
      return "parquet";
  }
  return "?";
}

std::vector<InputFile> resolve_inputs(const std::vector<std::string>& inputs, const std::string& format) {
  const std::vector<std::string>& names = format_names();
  L4_CHECK(std::find(names.begin(), names.end(), format) != names.end(),
           "prepare: unknown format '{}' (expected {}){}", format, join(names, ", "),
           did_you_mean(format, names));
  std::vector<InputFile> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      const std::vector<std::string> wanted = extensions_for(format);
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(in, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        const std::string path = it->path().string();
        if (std::find(wanted.begin(), wanted.end(), extension(path)) != wanted.end()) found.push_back(path);
      }
      L4_CHECK(!ec, "{}: cannot list the directory: {}", in, ec.message());
      L4_CHECK(!found.empty(), "{}: no {} files in this directory", in, join(wanted, ", "));
      std::sort(found.begin(), found.end());
      for (const std::string& path : found) files.push_back(classify(path, format));
      continue;
    }
    L4_CHECK(fs::is_regular_file(in, ec), "{}: input file not found", in);
    files.push_back(classify(in, format));
  }
  return files;
}

}  // namespace l4::data
