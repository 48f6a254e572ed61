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
#include "data/conversation_fit.h"
#include "data/dataset_reader.h"
#include "data/dataset_writer.h"
#include "data/input_files.h"
#include "data/parquet_reader.h"

namespace l4::data {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxSkippedExamples = 10;

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

// Calls fn(document text, first line) for every text document: a document ends at a blank line, or at the
// first line end once it holds text_doc_bytes (corpora with one paragraph per line).
template <class Fn>
void for_each_text_block(const std::string& path, uint64_t text_doc_bytes, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  L4_CHECK(in.good(), "{}: cannot read input file", path);
  std::string line, block;
  int64_t line_no = 0, block_line = 0;
  const auto flush = [&] {
    if (!block.empty()) fn(std::string_view(block), block_line);
    block.clear();
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
      continue;
    }
    if (block.empty()) {
      block_line = line_no;
    } else {
      block += '\n';
    }
    block += line;
    if (block.size() >= text_doc_bytes) flush();
  }
  L4_CHECK(!in.bad(), "{}: read error", path);
  flush();
}

// Calls fn(line, line number) for every non-blank line.
template <class Fn>
void for_each_line(const std::string& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  L4_CHECK(in.good(), "{}: cannot read input file", path);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) fn(std::string_view(line), line_no);
  }
  L4_CHECK(!in.bad(), "{}: read error", path);
}

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

// One input file's records -> documents in its part directories; its entry of meta.json "sources".
class FileProcessor {
 public:
  FileProcessor(const InputFile& input, const PrepareOptions& opt, const DocumentEncoder& encoder,
                const std::string& train_dir, const std::string& eval_dir, Progress& progress)
      : input_(input),
        opt_(opt),
        encoder_(encoder),
        progress_(progress),
        base_dir_(fs::path(input.path).parent_path()),
        train_on_(train_on_from_name(opt.train_on)),
        overlong_(overlong_from_name(opt.overlong)) {
    WriterOptions wo;
    wo.shard_bytes = ~0ull;
    wo.deflate_level = 0;
    wo.tokenizer = encoder.tokenizer_info();
    wo.split = "part";
    train_ = std::make_unique<DatasetWriter>(train_dir, wo);
    if (!eval_dir.empty()) eval_ = std::make_unique<DatasetWriter>(eval_dir, wo);
  }

  nlohmann::json run() {
    const std::string& path = input_.path;
    if (input_.kind == InputKind::text) {
      for_each_text_block(path, opt_.text_doc_bytes, [&](std::string_view block, int64_t line) {
        handle(block, fmt::format("{}:{}", path, line), [&] {
          L4_CHECK(valid_utf8(block), "invalid UTF-8");
          return std::vector<Document>{encoder_.encode_text(block)};
        });
      });
    } else if (input_.kind == InputKind::jsonl) {
      for_each_line(path, [&](std::string_view line, int64_t line_no) {
        handle(line, fmt::format("{}:{}", path, line_no), [&] {
          L4_CHECK(valid_utf8(line), "invalid UTF-8");
          return documents_of(parse_json_line(line));
        });
      });
    } else {
      ParquetReader reader(path, record_keys());
      reader.for_each_row([&](int64_t row, const nlohmann::json& object) {
        std::string bytes;
        try {
          bytes = object.dump();
        } catch (const nlohmann::json::exception&) {
          bytes.clear();  // invalid UTF-8 in a string column: reported by handle() below
        }
        handle(bytes, fmt::format("{}:row {}", path, row), [&] {
          L4_CHECK(!bytes.empty(), "invalid UTF-8");
          return documents_of(object);
        });
      });
    }
    nlohmann::json source = {{"path", path},        {"format", input_kind_name(input_.kind)},
                             {"records", records_}, {"skipped", skipped_},
                             {"bytes", bytes_},     {"tokens", tokens_},
                             {"kinds", kinds_},     {"skipped_examples", examples_}};
    if (conversations_ > 0) {
      source["conversations_split"] = split_;
      source["conversations_truncated"] = truncated_;
      source["conversations_dropped"] = dropped_;
    }
    train_->set_meta("sources", nlohmann::json::array({source}));
    train_->finish();
    if (eval_) eval_->finish();
    return source;
  }

 private:
  // The documents of one JSON record (a JSONL line or a Parquet row).
  std::vector<Document> documents_of(const nlohmann::json& j) {
    const RecordKind kind = detect_record_kind(j);
    L4_CHECK(
        !input_.conversations_only || is_conversation(kind),
        "expected a conversation record (\"messages\", \"conversations\" or \"instruction\"/\"output\"), "
        "got a text record");
    Record record = parse_record(j, kind, base_dir_.string());
    kind_ = record_kind_name(kind);
    task_ = record.task;
    if (!is_conversation(kind)) return {encoder_.encode_text(record.text)};
    const bool has_assistant = std::any_of(record.turns.begin(), record.turns.end(),
                                           [](const ChatTurn& t) { return t.role == "assistant"; });
    L4_CHECK(has_assistant || train_on_ == TrainOn::all, "no assistant message (nothing to train on)");
    mark_targets(record.turns, train_on_);
    for (const ChatTurn& t : record.turns) {
      for (const ChatPart& p : t.parts) {
        if (p.is_image) bytes_ += static_cast<int64_t>(fs::file_size(p.image_path));
      }
    }
    FittedConversation fit = fit_conversation(encoder_, record.turns, train_on_, opt_.seq_len, overlong_);
    ++conversations_;
    split_ += fit.was_split && fit.documents.size() > 1;
    truncated_ += fit.truncated;
    dropped_ += fit.dropped;
    return std::move(fit.documents);
  }

  template <class Encode>
  void handle(std::string_view record, const std::string& where, Encode&& encode) {
    ++records_;
    bytes_ += static_cast<int64_t>(record.size()) + 1;
    kind_ = "text";
    task_.clear();
    std::vector<Document> docs;
    try {
      docs = encode();
      for (Document& d : docs) d.task = task_.empty() ? default_task_ : task_;
      for (const Document& d : docs) L4_CHECK(!d.tokens.empty(), "empty document");
    } catch (const l4::Error& e) {
      const std::string message = fmt::format("{}: {}", where, e.what());
      if (!opt_.skip_bad_records) throw l4::Error(message);
      ++skipped_;
      if (examples_.size() < kMaxSkippedExamples) examples_.push_back(message);
      return;
    }
    kinds_[kind_] = kinds_.value(kind_, 0) + 1;
    const bool to_eval = eval_ && (input_.eval_only || is_eval_record(record, opt_.eval_fraction));
    DatasetWriter& out = to_eval ? *eval_ : *train_;
    for (const Document& d : docs) {
      tokens_ += static_cast<int64_t>(d.tokens.size());
      out.add(d, where);
    }
    if (records_ % 64 == 0) progress_.maybe_log(input_.path, records_, tokens_, bytes_);
  }

  const InputFile& input_;
  const PrepareOptions& opt_;
  const DocumentEncoder& encoder_;
  Progress& progress_;
  const fs::path base_dir_;
  const TrainOn train_on_;
  const Overlong overlong_;
  std::unique_ptr<DatasetWriter> train_, eval_;
  std::string kind_;
  std::string task_;                                                            // of the record being handled
  const std::string default_task_ = fs::path(input_.path).filename().string();  // records without "task"
  int64_t records_ = 0, skipped_ = 0, bytes_ = 0, tokens_ = 0;
  int64_t conversations_ = 0, split_ = 0, truncated_ = 0, dropped_ = 0;
  nlohmann::json kinds_ = nlohmann::json::object(), examples_ = nlohmann::json::array();
};

// Concatenates the parts of one split, in input order, into the final dataset.
int64_t stitch(const PrepareOptions& opt, size_t num_files, const TokenizerInfo& tokenizer,
               const std::string& parts_root, const char* split, const std::string& out_dir,
               const nlohmann::json& sources) {
  WriterOptions wo;
  wo.shard_bytes = opt.shard_bytes;
  wo.tokenizer = tokenizer;
  wo.split = opt.eval_dir.empty() ? "all" : split;
  DatasetWriter writer(out_dir, wo);
  for (size_t i = 0; i < num_files; ++i) {
    DatasetReader part(part_dir(parts_root, i, split));
    for (uint64_t g = 0; g < part.num_docs(); ++g) writer.add(part.read_document(g), part.dir());
  }
  writer.set_meta("sources", sources);
  writer.set_meta("eval_fraction", opt.eval_dir.empty() ? 0.0 : opt.eval_fraction);
  writer.set_meta("train_on", opt.train_on);
  writer.set_meta("overlong", opt.overlong);
  writer.set_meta("seq_len", opt.seq_len);
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

PrepareReport prepare_dataset(const PrepareOptions& opt, const DocumentEncoder& encoder, PrepareComm& comm) {
  L4_CHECK(!opt.inputs.empty(), "prepare: no input files");
  L4_CHECK(!opt.train_dir.empty(), "prepare: no output directory");
  L4_CHECK(opt.eval_fraction >= 0.0 && opt.eval_fraction <= 1.0, "prepare: eval_fraction {} outside [0, 1]",
           opt.eval_fraction);
  L4_CHECK(opt.text_doc_bytes >= 1, "prepare: text_doc_bytes must be >= 1, got {}", opt.text_doc_bytes);
  train_on_from_name(opt.train_on);
  overlong_from_name(opt.overlong);
  L4_CHECK(opt.eval_inputs.empty() || !opt.eval_dir.empty(),
           "prepare: eval inputs ({}) need an eval output directory", opt.eval_inputs.front());
  std::vector<InputFile> files = resolve_inputs(opt.inputs, opt.format);
  if (!opt.eval_inputs.empty()) {
    for (InputFile f : resolve_inputs(opt.eval_inputs, opt.format)) {
      f.eval_only = true;
      files.push_back(std::move(f));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::string parts_root = fs::path(opt.train_dir).lexically_normal().string() + ".parts";
  if (comm.rank() == 0) {
    std::error_code ec;
    fs::remove_all(parts_root, ec);
  }
  comm.barrier();

  PrepareReport report;
  report.files = static_cast<int64_t>(files.size());
  std::string error;
  Progress progress(opt.progress_every_s);
  try {
    fs::create_directories(parts_root);
    for (size_t i = static_cast<size_t>(comm.rank()); i < files.size();
         i += static_cast<size_t>(comm.size())) {
      FileProcessor(files[i], opt, encoder, part_dir(parts_root, i, "train"),
                    opt.eval_dir.empty() ? "" : part_dir(parts_root, i, "eval"), progress)
          .run();
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
      for (size_t i = 0; i < files.size(); ++i) {
        const DatasetReader part(part_dir(parts_root, i, "train"));
        sources.push_back(part.meta().at("sources").at(0));
      }
      const TokenizerInfo tokenizer = encoder.tokenizer_info();
      report.train_documents =
          stitch(opt, files.size(), tokenizer, parts_root, "train", opt.train_dir, sources);
      if (!opt.eval_dir.empty()) {
        report.eval_documents =
            stitch(opt, files.size(), tokenizer, parts_root, "eval", opt.eval_dir, sources);
      }
      for (const auto& s : sources) {
        report.records += s["records"].get<int64_t>();
        report.skipped += s["skipped"].get<int64_t>();
        report.input_bytes += s["bytes"].get<int64_t>();
        report.tokens += s["tokens"].get<int64_t>();
        report.conversations_split += s.value("conversations_split", int64_t{0});
        report.conversations_truncated += s.value("conversations_truncated", int64_t{0});
        report.conversations_dropped += s.value("conversations_dropped", int64_t{0});
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
