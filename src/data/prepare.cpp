#include "data/prepare.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "data/dataset_reader.h"
#include "data/dataset_writer.h"

namespace l4::data {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxSkippedExamples = 10;
const std::vector<std::string> kRoles = {"system", "user", "assistant", "tool", "ipython"};

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 9;
    if (extra == 9 || i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

// Calls fn(record, first_line) for every record of the file. Text documents end at a blank line, or at
// the first line end once they hold text_doc_bytes (corpora with one paragraph per line).
template <class Fn>
void for_each_record(const std::string& path, const PrepareOptions& opt, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  L4_CHECK(in.good(), "{}: cannot read input file", path);
  const bool text = opt.format == "text";
  std::string line, block;
  int64_t line_no = 0, block_line = 0;
  const auto flush = [&] {
    if (!block.empty()) fn(std::string_view(block), block_line);
    block.clear();
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool blank = line.find_first_not_of(" \t") == std::string::npos;
    if (!text) {
      if (!blank) fn(std::string_view(line), line_no);
      continue;
    }
    if (blank) {
      flush();
      continue;
    }
    if (block.empty()) {
      block_line = line_no;
    } else {
      block += '\n';
    }
    block += line;
    if (block.size() >= opt.text_doc_bytes) flush();
  }
  L4_CHECK(!in.bad(), "{}: read error", path);
  flush();
}

nlohmann::json parse_json_record(std::string_view record) {
  try {
    return nlohmann::json::parse(record);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    const auto p = what.find("parse error");
    L4_FAIL("invalid JSON: {}", p == std::string::npos ? what : what.substr(p));
  }
}

std::string parse_text_record(std::string_view record) {
  const nlohmann::json j = parse_json_record(record);
  L4_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(),
           "expected an object with a string field \"text\"");
  return j["text"].get<std::string>();
}

std::vector<ChatTurn> parse_chat_record(std::string_view record, const fs::path& base_dir) {
  const nlohmann::json j = parse_json_record(record);
  L4_CHECK(j.is_object() && j.contains("messages") && j["messages"].is_array() && !j["messages"].empty(),
           "expected an object with a non-empty list \"messages\"");
  std::vector<ChatTurn> turns;
  bool has_assistant = false;
  for (size_t m = 0; m < j["messages"].size(); ++m) {
    const nlohmann::json& msg = j["messages"][m];
    L4_CHECK(msg.is_object() && msg.contains("role") && msg["role"].is_string(),
             "messages[{}]: expected an object with a string \"role\"", m);
    ChatTurn turn;
    turn.role = msg["role"].get<std::string>();
    L4_CHECK(std::find(kRoles.begin(), kRoles.end(), turn.role) != kRoles.end(),
             "messages[{}]: unknown role '{}' (expected system, user, assistant, tool or ipython)", m, turn.role);
    has_assistant |= turn.role == "assistant";
    L4_CHECK(msg.contains("content"), "messages[{}]: \"content\" is missing", m);
    const nlohmann::json& content = msg["content"];
    if (content.is_string()) {
      turn.parts.push_back({false, content.get<std::string>(), ""});
    } else {
      L4_CHECK(content.is_array(), "messages[{}].content: expected a string or a list of parts", m);
      for (size_t p = 0; p < content.size(); ++p) {
        const nlohmann::json& part = content[p];
        L4_CHECK(part.is_object() && part.contains("type") && part["type"].is_string(),
                 "messages[{}].content[{}]: expected an object with a string \"type\"", m, p);
        const std::string type = part["type"].get<std::string>();
        if (type == "text") {
          L4_CHECK(part.contains("text") && part["text"].is_string(),
                   "messages[{}].content[{}]: a text part needs a string \"text\"", m, p);
          turn.parts.push_back({false, part["text"].get<std::string>(), ""});
        } else if (type == "image") {
          const char* key = part.contains("path") ? "path" : "image";
          L4_CHECK(part.contains(key) && part[key].is_string(),
                   "messages[{}].content[{}]: an image part needs a string \"path\"", m, p);
          const std::string rel = part[key].get<std::string>();
          const fs::path resolved = (base_dir / rel).lexically_normal();
          L4_CHECK(fs::is_regular_file(resolved), "messages[{}].content[{}]: image '{}' not found ({})", m, p, rel,
                   resolved.string());
          L4_CHECK(turn.role != "assistant", "messages[{}]: images in assistant messages are not supported", m);
          turn.parts.push_back({true, "", resolved.string()});
        } else {
          L4_FAIL("messages[{}].content[{}]: unknown part type '{}' (expected text or image)", m, p, type);
        }
      }
    }
    turns.push_back(std::move(turn));
  }
  L4_CHECK(has_assistant, "no assistant message (nothing to train on)");
  return turns;
}

struct FileResult {
  nlohmann::json source;  // path, format, records, skipped, bytes, skipped_examples
};

class Progress {
 public:
  explicit Progress(double every_s) : every_s_(every_s), start_(clock::now()), last_(start_) {}
  void maybe_log(const std::string& file, int64_t records, int64_t tokens, int64_t bytes) {
    const auto now = clock::now();
    if (std::chrono::duration<double>(now - last_).count() < every_s_) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    L4_LOG_INFO("prepare: {}: {} records, {} tokens, {:.1f} MB/s", file, records, tokens, bytes / 1e6 / secs);
  }

 private:
  using clock = std::chrono::steady_clock;
  double every_s_;
  clock::time_point start_, last_;
};

std::string part_dir(const std::string& parts_root, size_t file_index, const char* split) {
  return fmt::format("{}/part_{:05d}.{}", parts_root, file_index, split);
}

FileResult process_file(size_t index, const PrepareOptions& opt, const DocumentEncoder& encoder,
                        const std::string& parts_root, Progress& progress) {
  const std::string& path = opt.inputs[index];
  WriterOptions wo;
  wo.shard_bytes = ~0ull;
  wo.deflate_level = 0;
  wo.tokenizer = encoder.tokenizer_info();
  wo.split = "part";
  DatasetWriter train(part_dir(parts_root, index, "train"), wo);
  std::unique_ptr<DatasetWriter> eval;
  if (!opt.eval_dir.empty()) eval = std::make_unique<DatasetWriter>(part_dir(parts_root, index, "eval"), wo);
  const fs::path base_dir = fs::path(path).parent_path();
  int64_t records = 0, skipped = 0, bytes = 0, tokens = 0;
  nlohmann::json examples = nlohmann::json::array();
  for_each_record(path, opt, [&](std::string_view record, int64_t line) {
    ++records;
    bytes += static_cast<int64_t>(record.size()) + 1;
    const std::string where = fmt::format("{}:{}", path, line);
    std::optional<Document> doc;
    try {
      L4_CHECK(valid_utf8(record), "invalid UTF-8");
      if (opt.format == "text") {
        doc = encoder.encode_text(record);
      } else if (opt.format == "jsonl") {
        doc = encoder.encode_text(parse_text_record(record));
      } else {
        const std::vector<ChatTurn> turns = parse_chat_record(record, base_dir);
        for (const ChatTurn& t : turns) {
          for (const ChatPart& p : t.parts) {
            if (p.is_image) bytes += static_cast<int64_t>(fs::file_size(p.image_path));
          }
        }
        doc = encoder.encode_chat(turns);
      }
      L4_CHECK(!doc->tokens.empty(), "empty document");
    } catch (const l4::Error& e) {
      const std::string message = fmt::format("{}: {}", where, e.what());
      if (!opt.skip_bad_records) throw l4::Error(message);
      ++skipped;
      if (examples.size() < kMaxSkippedExamples) examples.push_back(message);
      return;
    }
    tokens += static_cast<int64_t>(doc->tokens.size());
    DatasetWriter& out = (eval && is_eval_record(record, opt.eval_fraction)) ? *eval : train;
    out.add(*doc, where);
    if (records % 64 == 0) progress.maybe_log(path, records, tokens, bytes);
  });
  FileResult result;
  result.source = {{"path", path},   {"format", opt.format}, {"records", records}, {"skipped", skipped},
                   {"bytes", bytes}, {"tokens", tokens},     {"skipped_examples", examples}};
  train.set_meta("sources", nlohmann::json::array({result.source}));
  train.finish();
  if (eval) eval->finish();
  return result;
}

// Concatenates the parts of one split, in input order, into the final dataset.
int64_t stitch(const PrepareOptions& opt, const TokenizerInfo& tokenizer, const std::string& parts_root,
               const char* split, const std::string& out_dir, const nlohmann::json& sources) {
  WriterOptions wo;
  wo.shard_bytes = opt.shard_bytes;
  wo.tokenizer = tokenizer;
  wo.split = opt.eval_dir.empty() ? "all" : split;
  DatasetWriter writer(out_dir, wo);
  for (size_t i = 0; i < opt.inputs.size(); ++i) {
    DatasetReader part(part_dir(parts_root, i, split));
    for (uint64_t g = 0; g < part.num_docs(); ++g) writer.add(part.read_document(g), part.dir());
  }
  writer.set_meta("sources", sources);
  writer.set_meta("eval_fraction", opt.eval_dir.empty() ? 0.0 : opt.eval_fraction);
  const int64_t docs = writer.num_documents();
  writer.finish();
  return docs;
}

}  // namespace

double record_hash_unit(std::string_view record) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a splitmix64 finaliser
  for (unsigned char c : record) h = (h ^ c) * 0x100000001b3ull;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

bool is_eval_record(std::string_view record, double eval_fraction) {
  return record_hash_unit(record) < eval_fraction;
}

Document expand_image_placeholders(const std::vector<int32_t>& ids, const std::vector<uint8_t>& mask,
                                   int32_t placeholder, std::vector<EncodedImage> images) {
  L4_ASSERT(ids.size() == mask.size(), "ids and mask differ in length");
  Document doc;
  size_t next = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != placeholder) {
      doc.tokens.push_back(static_cast<uint32_t>(ids[i]));
      doc.loss_mask.push_back(mask[i]);
      continue;
    }
    L4_CHECK(next < images.size(), "the text has more image placeholders than images");
    EncodedImage& im = images[next++];
    ImageRecord rec;
    rec.token_begin = doc.tokens.size();
    for (int32_t t : im.tokens) {
      doc.tokens.push_back(static_cast<uint32_t>(t));
      doc.loss_mask.push_back(0);
    }
    rec.token_end = doc.tokens.size();
    rec.grid_rows = im.grid_rows;
    rec.grid_cols = im.grid_cols;
    rec.tiles = std::move(im.tiles);
    doc.images.push_back(std::move(rec));
  }
  L4_CHECK(next == images.size(), "{} images but {} image placeholders in the text", images.size(), next);
  return doc;
}

PrepareReport prepare_dataset(const PrepareOptions& opt, const DocumentEncoder& encoder, PrepareComm& comm) {
  L4_CHECK(opt.format == "text" || opt.format == "jsonl" || opt.format == "chat",
           "prepare: unknown format '{}' (expected text, jsonl or chat)", opt.format);
  L4_CHECK(!opt.inputs.empty(), "prepare: no input files");
  L4_CHECK(!opt.train_dir.empty(), "prepare: no output directory");
  L4_CHECK(opt.eval_fraction >= 0.0 && opt.eval_fraction <= 1.0, "prepare: eval_fraction {} outside [0, 1]",
           opt.eval_fraction);
  for (const std::string& in : opt.inputs) L4_CHECK(fs::is_regular_file(in), "{}: input file not found", in);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string parts_root = fs::path(opt.train_dir).lexically_normal().string() + ".parts";
  if (comm.rank() == 0) {
    std::error_code ec;
    fs::remove_all(parts_root, ec);
  }
  comm.barrier();

  PrepareReport report;
  std::string error;
  Progress progress(opt.progress_every_s);
  try {
    fs::create_directories(parts_root);
    for (size_t i = static_cast<size_t>(comm.rank()); i < opt.inputs.size(); i += static_cast<size_t>(comm.size())) {
      process_file(i, opt, encoder, parts_root, progress);
    }
  } catch (const l4::Error& e) {
    error = e.what();
  }
  const auto fail_together = [&](bool ok) {
    if (comm.all_true(ok)) return;
    if (comm.rank() == 0) {
      std::error_code ec;
      fs::remove_all(parts_root, ec);
    }
    if (!ok) throw l4::Error(error);
    throw l4::Error("prepare failed in another process (its error is printed above)");
  };
  fail_together(error.empty());

  if (comm.rank() == 0) {
    try {
      nlohmann::json sources = nlohmann::json::array();
      for (size_t i = 0; i < opt.inputs.size(); ++i) {
        const DatasetReader part(part_dir(parts_root, i, "train"));
        sources.push_back(part.meta().at("sources").at(0));
      }
      const TokenizerInfo tokenizer = encoder.tokenizer_info();
      report.train_documents = stitch(opt, tokenizer, parts_root, "train", opt.train_dir, sources);
      if (!opt.eval_dir.empty()) {
        report.eval_documents = stitch(opt, tokenizer, parts_root, "eval", opt.eval_dir, sources);
      }
      for (const auto& s : sources) {
        report.records += s["records"].get<int64_t>();
        report.skipped += s["skipped"].get<int64_t>();
        report.input_bytes += s["bytes"].get<int64_t>();
        report.tokens += s["tokens"].get<int64_t>();
        for (const auto& e : s["skipped_examples"]) {
          if (report.skipped_examples.size() < kMaxSkippedExamples) report.skipped_examples.push_back(e);
        }
      }
    } catch (const l4::Error& e) {
      error = e.what();
    }
  }
  fail_together(error.empty());
  if (comm.rank() == 0) {
    std::error_code ec;
    fs::remove_all(parts_root, ec);
  }
  comm.barrier();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace l4::data
