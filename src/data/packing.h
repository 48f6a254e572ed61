// Packing plan of one epoch: which token ranges of which documents form each row of seq_len tokens.
// It depends only on the document lengths/image spans, (seed, epoch) and the options, never on the
// number of ranks, which is what makes the global batch identical at every world size.
//
// Rules (as torchtune's PackedDataset, plus images):
//   - documents are visited in a per-epoch permutation (identity when shuffle is off);
//   - pack: a document that fits in one row is never split: if it does not fit in the space left,
//     the row is closed (padded) and the document starts the next row; a document longer than
//     seq_len fills the space left and continues in the following rows;
//   - no pack: every row holds one piece of one document, padded; long documents continue in the
//     next rows;
//   - a piece never cuts an image's token span (its patch tokens stay with its tiles); an image
//     longer than seq_len is an error;
//   - documents longer than seq_len follow `overlong` (overlong.h): split continues them as above,
//     truncate keeps their first seq_len tokens as one piece (no label past its end), drop leaves them
//     out.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/overlong.h"

namespace l4::data {

class DatasetReader;

// Per-document lengths and image token spans (relative to the document), CSR layout.
struct DocIndex {
  std::vector<uint64_t> lengths;
  std::vector<uint64_t> image_offsets{0};  // document d's spans = spans[image_offsets[d] : ...[d+1]]
  std::vector<std::pair<uint64_t, uint64_t>> spans;

  void add(uint64_t length, const std::vector<std::pair<uint64_t, uint64_t>>& image_spans = {});
  uint64_t size() const { return lengths.size(); }
  static DocIndex from_reader(const DatasetReader& reader);
};

struct Piece {
  uint64_t doc = 0;
  uint64_t begin = 0;   // first token within the document
  uint64_t length = 0;  // tokens in this row
  bool cut = false;     // a truncated document: its last token has no label
};

struct EpochPlan {
  std::vector<Piece> pieces;
  std::vector<uint64_t> row_starts{0};  // row r = pieces[row_starts[r] : row_starts[r+1]]
  uint64_t num_rows() const { return row_starts.size() - 1; }
};

struct PackingOptions {
  int64_t seq_len = 512;
  bool pack = true;
  bool shuffle = true;
  uint64_t seed = 0;
  Overlong overlong = Overlong::split;
};

// Deterministic permutation of [0, n) for (seed, epoch); portable (own generator, not std::).
std::vector<uint64_t> epoch_permutation(uint64_t n, uint64_t seed, uint64_t epoch);

EpochPlan plan_epoch(const DocIndex& docs, const PackingOptions& options, uint64_t epoch);

}  // namespace l4::data
