// Synthetic documents (random tokens, masks and images) written with DatasetWriter, for data tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "data/dataset_writer.h"

namespace l4::data::testing {

inline constexpr int64_t kVocab = 1000;
inline constexpr int64_t kPad = 999;
inline constexpr int64_t kPatch = 998;

// A fresh, empty directory under the build's testdata folder.
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(L4_TEST_DATA_DIR) + "/data_unit/" + name + "." + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path());
  return dir;
}

struct SyntheticSpec {
  int docs = 40;
  int min_len = 1;
  int max_len = 60;
  int images_every = 0;  // every n-th document gets an image (0: none)
  int image_tokens = 6;  // tokens of an image span (patch tokens inside it)
  uint32_t seed = 7;
  bool sft_mask = true;  // random 0/1 runs; false: all ones
};

inline std::vector<Document> make_documents(const SyntheticSpec& spec) {
  std::mt19937 rng(spec.seed);
  std::vector<Document> docs;
  for (int d = 0; d < spec.docs; ++d) {
    Document doc;
    const int len = std::uniform_int_distribution<int>(spec.min_len, spec.max_len)(rng);
    for (int i = 0; i < len; ++i) {
      doc.tokens.push_back(std::uniform_int_distribution<uint32_t>(0, 900)(rng));
      doc.loss_mask.push_back(spec.sft_mask ? static_cast<uint8_t>((i / 5 + d) % 2) : 1);
    }
    if (spec.images_every > 0 && d % spec.images_every == 0 && len >= spec.image_tokens + 2) {
      ImageRecord im;
      im.token_begin = 1;
      im.token_end = 1 + spec.image_tokens;
      for (uint64_t i = im.token_begin + 1; i + 1 < im.token_end; ++i) doc.tokens[i] = kPatch;
      const uint64_t tiles = 1 + d % 2;
      im.grid_rows = 1;
      im.grid_cols = tiles;
      im.tiles.resize(tiles * kTileBytes);
      for (size_t b = 0; b < im.tiles.size(); b += 997) im.tiles[b] = static_cast<uint8_t>(d + b);
      im.tiles[0] = static_cast<uint8_t>(d);
      doc.images.push_back(std::move(im));
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

inline TokenizerInfo synthetic_tokenizer() {
  TokenizerInfo info;
  info.sha256 = "synthetic";
  info.vocab_size = kVocab;
  info.pad_id = kPad;
  info.patch_id = kPatch;
  return info;
}

inline void write_dataset(const std::string& dir, const std::vector<Document>& docs, uint64_t shard_bytes = 1 << 20) {
  WriterOptions options;
  options.shard_bytes = shard_bytes;
  options.tokenizer = synthetic_tokenizer();
  DatasetWriter writer(dir, options);
  for (const Document& doc : docs) writer.add(doc);
  writer.finish();
}

}  // namespace l4::data::testing
