#include "data/dataset_format.h"

#include <fmt/format.h>

#include "core/error.h"

namespace l4::data {

nlohmann::json TokenizerInfo::to_json() const {
  return {{"sha256", sha256}, {"vocab_size", vocab_size}, {"pad_id", pad_id}, {"patch_id", patch_id}};
}

TokenizerInfo TokenizerInfo::from_json(const nlohmann::json& j, const std::string& where) {
  L4_CHECK(j.is_object(), "{}: 'tokenizer' must be an object", where);
  TokenizerInfo info;
  try {
    info.sha256 = j.at("sha256").get<std::string>();
    info.vocab_size = j.at("vocab_size").get<int64_t>();
    info.pad_id = j.at("pad_id").get<int64_t>();
    info.patch_id = j.at("patch_id").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    L4_FAIL("{}: tokenizer: {}", where, e.what());
  }
  return info;
}

std::string shard_file_name(int64_t index) { return fmt::format("shard_{:05d}.h5", index); }

void validate_document(const Document& doc, int64_t vocab_size, const std::string& where) {
  L4_CHECK(doc.loss_mask.size() == doc.tokens.size(), "{}: {} tokens but {} loss-mask entries", where,
           doc.tokens.size(), doc.loss_mask.size());
  for (size_t i = 0; i < doc.tokens.size(); ++i) {
    L4_CHECK(doc.loss_mask[i] <= 1, "{}: loss mask value {} at token {} (expected 0 or 1)", where,
             doc.loss_mask[i], i);
    L4_CHECK(vocab_size <= 0 || doc.tokens[i] < static_cast<uint64_t>(vocab_size),
             "{}: token id {} at {} outside the vocabulary [0, {})", where, doc.tokens[i], i, vocab_size);
  }
  uint64_t previous_end = 0;
  for (size_t i = 0; i < doc.images.size(); ++i) {
    const ImageRecord& im = doc.images[i];
    L4_CHECK(!im.tiles.empty() && im.tiles.size() % kTileBytes == 0,
             "{}: image {}: {} tile bytes is not a positive multiple of 3x{}x{}", where, i, im.tiles.size(),
             kTileSize, kTileSize);
    L4_CHECK(im.grid_rows >= 1 && im.grid_cols >= 1, "{}: image {}: empty tile grid", where, i);
    L4_CHECK(im.token_begin >= previous_end && im.token_begin < im.token_end && im.token_end <= doc.tokens.size(),
             "{}: image {}: token span [{}, {}) not ordered inside the document of {} tokens", where, i,
             im.token_begin, im.token_end, doc.tokens.size());
    previous_end = im.token_end;
  }
}

}  // namespace l4::data
