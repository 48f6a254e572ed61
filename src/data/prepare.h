// `llama4 prepare`: raw text / JSONL / chat JSONL (+ images) -> dataset directories (dataset_format.h).
//
// Records: text files are split into documents at blank lines, and at the first line end after
// text_doc_bytes (so a corpus with one paragraph per line gives documents of a few KB); JSONL has one
// {"text": ...} per line; chat JSONL has one {"messages": [{"role", "content"}]} per line, content a
// string or a list of {"type": "text", "text"} / {"type": "image", "path"} parts, image paths
// relative to the JSONL file. Every record goes to the eval split when a hash of its bytes falls
// below eval_fraction, so the split is deterministic and identical records share a split.
//
// Several processes (mpirun) split the input files between them; each writes its files' documents
// into parts, and rank 0 concatenates the parts in input order, so the result is byte-for-byte the
// same documents in the same shards as with one process.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset_format.h"

namespace l4::data {

struct ChatPart {
  bool is_image = false;
  std::string text;        // text part
  std::string image_path;  // image part, resolved against the JSONL file's directory
};

struct ChatTurn {
  std::string role;  // system | user | assistant | tool | ipython
  std::vector<ChatPart> parts;
};

// Turns records into token documents; implemented over the tokenizer (and the vision tiling for
// images) by the command line. Errors are l4::Error without a location; the pipeline adds it.
class DocumentEncoder {
 public:
  virtual ~DocumentEncoder() = default;
  virtual TokenizerInfo tokenizer_info() const = 0;
  // A pretraining document: every token is a target.
  virtual Document encode_text(std::string_view text) const = 0;
  // An SFT conversation: assistant tokens are targets; images expanded into their tokens and tiles.
  virtual Document encode_chat(const std::vector<ChatTurn>& turns) const = 0;
};

// One image as the vision code encodes it: tiles and the tokens that stand for it in the text.
struct EncodedImage {
  std::vector<uint8_t> tiles;  // n * kTileBytes
  uint64_t grid_rows = 1, grid_cols = 1;
  std::vector<int32_t> tokens;  // <|image_start|> ... <|patch|> ... <|image_end|>
};
using ImageEncoder = std::function<EncodedImage(const std::string& path)>;

// Replaces the k-th occurrence of `placeholder` in ids with images[k]'s tokens (never targets) and
// records the spans; the number of placeholders must equal images.size().
Document expand_image_placeholders(const std::vector<int32_t>& ids, const std::vector<uint8_t>& mask,
                                   int32_t placeholder, std::vector<EncodedImage> images);

// Minimal collective operations prepare needs across processes (MPI in the command line).
class PrepareComm {
 public:
  virtual ~PrepareComm() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  virtual void barrier() {}
  // True when `ok` is true on every process.
  virtual bool all_true(bool ok) { return ok; }
};

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string format = "text";  // text | jsonl | chat
  std::string train_dir;        // receives every record when eval_dir is empty
  std::string eval_dir;
  double eval_fraction = 0.0;
  bool skip_bad_records = false;
  uint64_t shard_bytes = 256ull << 20;
  uint64_t text_doc_bytes = 2048;  // format text: a document ends at the first line end after this many bytes
  double progress_every_s = 5.0;
};

struct PrepareReport {
  int64_t records = 0, skipped = 0, train_documents = 0, eval_documents = 0, tokens = 0;
  int64_t input_bytes = 0;  // records and the image files they name
  double seconds = 0.0;
  std::vector<std::string> skipped_examples;  // "file:line: problem", the first few
};

// Writes train_dir (and eval_dir). Bad records are errors "file:line: problem" unless
// skip_bad_records. Rank 0's report covers all processes.
PrepareReport prepare_dataset(const PrepareOptions& options, const DocumentEncoder& encoder, PrepareComm& comm);

// Which split a record goes to: hash of its bytes mapped to [0, 1) compared with eval_fraction.
bool is_eval_record(std::string_view record, double eval_fraction);
double record_hash_unit(std::string_view record);

}  // namespace l4::data
