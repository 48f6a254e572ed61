#include "data/packing.h"

#include <algorithm>

#include "core/error.h"
#include "data/dataset_reader.h"

namespace l4::data {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void DocIndex::add(uint64_t length, const std::vector<std::pair<uint64_t, uint64_t>>& image_spans) {
  lengths.push_back(length);
  spans.insert(spans.end(), image_spans.begin(), image_spans.end());
  image_offsets.push_back(spans.size());
}

DocIndex DocIndex::from_reader(const DatasetReader& reader) {
  DocIndex index;
  index.lengths.reserve(reader.num_docs());
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (uint64_t g = 0; g < reader.num_docs(); ++g) {
    spans.clear();
    for (uint64_t k = 0; k < reader.doc_image_count(g); ++k) {
      const ImageMeta& im = reader.doc_image(g, k);
      spans.emplace_back(im.token_begin, im.token_end);
    }
    index.add(reader.doc_length(g), spans);
  }
  return index;
}

std::vector<uint64_t> epoch_permutation(uint64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<uint64_t> order(n);
  for (uint64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t state = seed * 0x9E3779B97F4A7C15ull ^ (epoch + 0x5851F42D4C957F2Dull);
  splitmix64(state);
  for (uint64_t i = n; i > 1; --i) {  // Fisher-Yates
    const uint64_t j = static_cast<uint64_t>((static_cast<unsigned __int128>(splitmix64(state)) * i) >> 64);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

EpochPlan plan_epoch(const DocIndex& docs, const PackingOptions& options, uint64_t epoch) {
  L4_CHECK(options.seq_len >= 2, "data.seq_len must be at least 2, got {}", options.seq_len);
  const uint64_t T = static_cast<uint64_t>(options.seq_len);
  std::vector<uint64_t> order;
  if (options.shuffle) {
    order = epoch_permutation(docs.size(), options.seed, epoch);
  } else {
    order.resize(docs.size());
    for (uint64_t i = 0; i < docs.size(); ++i) order[i] = i;
  }
  EpochPlan plan;
  uint64_t used = 0;  // tokens in the open row
  const auto close_row = [&] {
    if (used == 0) return;
    plan.row_starts.push_back(plan.pieces.size());
    used = 0;
  };
  for (uint64_t doc : order) {
    uint64_t len = docs.lengths[doc];
    bool cut = false;
    if (len > T && options.overlong == Overlong::drop) continue;
    if (len > T && options.overlong == Overlong::truncate) {
      len = T;
      for (uint64_t s = docs.image_offsets[doc]; s < docs.image_offsets[doc + 1]; ++s) {
        const auto [b, e] = docs.spans[s];
        if (b < len && len < e) len = b;  // never cut an image
      }
      cut = true;
      if (len == 0) continue;  // an image at the start longer than seq_len: nothing to keep
    }
    if (options.pack && len <= T && used + len > T) close_row();  // keep short documents whole
    uint64_t pos = 0;
    while (pos < len) {
      uint64_t end = pos + std::min(T - used, len - pos);
      // Move the cut before an image whose tokens it would split.
      for (uint64_t s = docs.image_offsets[doc]; s < docs.image_offsets[doc + 1]; ++s) {
        const auto [b, e] = docs.spans[s];
        if (b < end && end < e) {
          L4_CHECK(e - b <= T, "document {}: an image takes {} tokens, more than data.seq_len = {}", doc, e - b, T);
          end = b;
          break;
        }
      }
      if (end <= pos) {  // the next image does not fit in the space left: continue in a fresh row
        L4_ASSERT(used > 0, "image placement made no progress");
        close_row();
        continue;
      }
      plan.pieces.push_back({doc, pos, end - pos, cut});
      used += end - pos;
      pos = end;
      if (used == T || !options.pack) close_row();
    }
  }
  close_row();
  return plan;
}

}  // namespace l4::data
