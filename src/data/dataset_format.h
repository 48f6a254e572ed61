// The prepared dataset format (README "Dataset format"): a directory with meta.json and
// shard_NNNNN.h5 files. Each shard holds whole documents:
//   tokens             u32 [N]             token ids of all documents, concatenated
//   loss_mask          u8  [N]             1 where the token is a training target (all for pretraining,
//                                          assistant tokens for SFT)
//   doc_offsets        u64 [D+1]           document d = tokens[doc_offsets[d] : doc_offsets[d+1]]
//   image_tiles        u8  [M,3,336,336]   RGB tiles, CHW, chunked one tile per chunk, deflate
//   image_offsets      u64 [D+1]           document d's tiles = image_tiles[image_offsets[d] : ...[d+1]]
//   doc_image_offsets  u64 [D+1]           document d's images = images [doc_image_offsets[d] : ...[d+1]]
//   image_tile_offsets u64 [I+1]           image i's tiles = image_tiles[image_tile_offsets[i] : ...[i+1]]
//   image_grids        u64 [I,2]           image i's tile grid (rows, cols) as chosen by the vision tiling
//   image_token_spans  u64 [I,2]           image i's tokens [begin, end) relative to its document start
//   doc_tasks          u64 [D]             document d's task: an index into meta.json "tasks" (optional;
//                                          without it every document belongs to one task, "all")
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace l4::data {

inline constexpr int kSchemaVersion = 1;
inline constexpr int64_t kTileSize = 336;
inline constexpr int64_t kTileBytes = 3 * kTileSize * kTileSize;

struct ImageRecord {
  std::vector<uint8_t> tiles;  // num_tiles * kTileBytes bytes, each tile CHW RGB
  uint64_t grid_rows = 1, grid_cols = 1;
  uint64_t token_begin = 0, token_end = 0;  // the image's token span within its document
  uint64_t num_tiles() const { return tiles.size() / kTileBytes; }
};

struct Document {
  std::vector<uint32_t> tokens;
  std::vector<uint8_t> loss_mask;
  std::vector<ImageRecord> images;  // in token order, spans disjoint
  std::string task;                 // the record's "task", else its input file's name: eval reports per task
};

// Tokenizer facts the loader needs, recorded in meta.json["tokenizer"].
struct TokenizerInfo {
  std::string sha256;
  int64_t vocab_size = 0;  // 0: unknown (token ids are then not range-checked)
  int64_t pad_id = 0;
  int64_t patch_id = -1;  // <|patch|>: the slots vision features are scattered into; -1 if none
  nlohmann::json to_json() const;
  static TokenizerInfo from_json(const nlohmann::json& j, const std::string& where);
};

std::string shard_file_name(int64_t index);  // "shard_00003.h5"

// Checks a document's internal consistency (mask length, 0/1 mask, id range, image spans and tiles);
// `where` prefixes the error message.
void validate_document(const Document& doc, int64_t vocab_size, const std::string& where);

}  // namespace l4::data
