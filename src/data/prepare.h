// `llama4 prepare`: text, JSONL and Parquet records (+ images) -> dataset directories (dataset_format.h).
//
// Records: text files are split into documents at blank lines, and at the first line end after
// text_doc_bytes (so a corpus with one paragraph per line gives documents of a few KB); a JSONL line or a
// Parquet row is one record of a kind recognised by its keys (records.h: chat messages, ShareGPT, Alpaca,
// plain text); which files are read and how is input_files.h. Conversations get their loss mask from
// train_on and are fitted into seq_len by the overlong rule (conversation_fit.h). Every record goes to the
// eval split when a hash of its bytes (the text document, the JSONL line, the Parquet row as compact JSON)
// falls below eval_fraction, so the split is deterministic, identical records share a split and the pieces
// of a split conversation stay together.
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
#include "data/document_encoder.h"

namespace l4::data {

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
  std::vector<std::string> inputs;  // files or directories (input_files.h)
  std::string format = "auto";      // auto | text | jsonl | chat | parquet (input_files.h)
  std::string train_dir;            // receives every record when eval_dir is empty
  std::string eval_dir;
  std::vector<std::string> eval_inputs;  // files whose every record goes to eval_dir (a held-out set)
  double eval_fraction = 0.0;            // share of `inputs` records hashed into eval_dir
  bool skip_bad_records = false;
  uint64_t shard_bytes = 256ull << 20;
  uint64_t text_doc_bytes = 2048;  // format text: a document ends at the first line end after this many bytes
  std::string train_on = "assistant";  // assistant | all | last_turn (conversation_fit.h)
  std::string overlong = "split";      // split | truncate | drop, for conversations over seq_len tokens
  uint64_t seq_len = 0;                // 0: conversations are kept whole (the loader splits them)
  double progress_every_s = 5.0;
};

struct PrepareReport {
  int64_t records = 0, skipped = 0, train_documents = 0, eval_documents = 0, tokens = 0;
  int64_t files = 0;
  int64_t conversations_split = 0, conversations_truncated = 0, conversations_dropped = 0;
  int64_t input_bytes = 0;  // records and the image files they name
  double seconds = 0.0;
  std::vector<std::string> skipped_examples;  // "file:line: problem", the first few
};

// Writes train_dir (and eval_dir). Bad records are errors "file:line: problem" unless
// skip_bad_records. Rank 0's report covers all processes.
PrepareReport prepare_dataset(const PrepareOptions& options, const DocumentEncoder& encoder,
                              PrepareComm& comm);

// Which split a record goes to: hash of its bytes mapped to [0, 1) compared with eval_fraction.
bool is_eval_record(std::string_view record, double eval_fraction);
double record_hash_unit(std::string_view record);

}  // namespace l4::data
