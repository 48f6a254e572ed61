#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/pair_table.h"
#include "tokenizer/sha256.h"
#include "tokenizer/split_regex.h"
#include "tokenizer/token_table.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace l4::tokenizer {

// Merge results of recent pieces, shared by all threads (sharded locks keep contention low).
class PieceCache {
 public:
  bool get(std::string_view piece, size_t hash, std::vector<int32_t>& out) const {
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.map.find(std::string(piece));
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view piece, size_t hash, const int32_t* ids, size_t n) const {
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.map.size() >= kMaxPerShard) s.map.clear();  // bounded memory; hot pieces come back quickly
    s.map.emplace(std::string(piece), std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr size_t kShards = 32, kMaxPerShard = 4096;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

struct Tokenizer::Impl {
  Vocab vocab;
  std::string path, sha;
  std::unique_ptr<SplitRegex> regex;
  TokenTable id_of_bytes;  // BPE tokens -> id (views into vocab.bytes_of)
  std::array<int32_t, 256> byte_id{};
  std::unordered_map<std::string_view, const AddedToken*> added_of;
  std::vector<size_t> added_lengths;  // distinct lengths, longest first (leftmost-longest matching)
  std::array<bool, 256> added_first_byte{};
  bool has_plain_added = false;  // non-special added tokens (always matched)
  std::vector<bool> special;
  // (left id, right id) -> (rank, merged id). HF: the merges list. tiktoken: every split of every token
  // into two tokens, ranked by the whole token's rank, which is exactly "merge when the concatenation has
  // a rank" without hashing bytes in the hot loop.
  PairTable pairs;
  PieceCache cache;

  // Leftmost-longest added token in text[from..) eligible under parse_special: (position, token).
  std::pair<size_t, const AddedToken*> next_added(std::string_view text, size_t from, bool parse_special) const {
    if (!parse_special && !has_plain_added) return {std::string_view::npos, nullptr};
    for (size_t pos = from; pos < text.size(); ++pos) {
      if (!added_first_byte[static_cast<unsigned char>(text[pos])]) continue;
      for (size_t len : added_lengths) {
        if (pos + len > text.size()) continue;
        auto it = added_of.find(text.substr(pos, len));
        if (it != added_of.end() && (parse_special || !it->second->special)) return {pos, it->second};
      }
    }
    return {std::string_view::npos, nullptr};
  }

  void encode_piece(std::string_view piece, uint32_t offset, std::vector<int32_t>& ids,
                    std::vector<uint32_t>* offsets) const {
    const size_t first = ids.size();
    if (vocab.ignore_merges) {
      const int32_t id = id_of_bytes.find(piece);
      if (id >= 0) {
        ids.push_back(id);
        if (offsets) offsets->push_back(offset);
        return;
      }
    }
    const bool cacheable = piece.size() <= 64;
    const size_t hash = cacheable ? std::hash<std::string_view>()(piece) : 0;
    bool exact_offsets = true;
    if (!(cacheable && cache.get(piece, hash, ids))) {
      std::vector<std::pair<int32_t, int32_t>> initial;
      initial.reserve(piece.size());
      for (size_t i = 0; i < piece.size(); ++i) {
        int32_t id = byte_id[static_cast<unsigned char>(piece[i])];
        if (id < 0) id = vocab.unk_id;  // HF: unknown byte -> unk, or dropped without one
        if (id < 0) {
          exact_offsets = false;
          continue;
        }
        initial.emplace_back(static_cast<int32_t>(i), id);
      }
      const int32_t size = static_cast<int32_t>(piece.size());
      bpe_merge(initial, size, [&](int32_t, int32_t, int32_t, int32_t l, int32_t r) { return pairs.get(l, r); }, ids);
      if (cacheable && exact_offsets) cache.put(piece, hash, ids.data() + first, ids.size() - first);
    }
    if (offsets) {
      uint32_t at = offset;
      for (size_t i = first; i < ids.size(); ++i) {
        offsets->push_back(at);
        at += exact_offsets ? static_cast<uint32_t>(vocab.bytes_of[ids[i]].size()) : 0;
      }
    }
  }

  void encode_ordinary(std::string_view text, uint32_t offset, std::vector<int32_t>& ids,
                       std::vector<uint32_t>* offsets) const {
    std::vector<std::pair<uint32_t, uint32_t>> pieces;
    regex->split(text, pieces);
    for (const auto& [b, e] : pieces) encode_piece(text.substr(b, e - b), offset + b, ids, offsets);
  }

  void encode_segment(std::string_view text, uint32_t offset, bool parse_special, std::vector<int32_t>& ids,
                      std::vector<uint32_t>* offsets) const {
    size_t pos = 0;
    while (pos < text.size()) {
      const auto [at, token] = next_added(text, pos, parse_special);
      const size_t end = token ? at : text.size();
      if (end > pos) encode_ordinary(text.substr(pos, end - pos), offset + pos, ids, offsets);
      if (!token) break;
      ids.push_back(token->id);
      if (offsets) offsets->push_back(offset + at);
      pos = at + token->content.size();
    }
  }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::string file = path;
  if (is_directory(path)) {
    const std::string json_path = path + "/tokenizer.json", model_path = path + "/tokenizer.model";
    if (file_exists(json_path)) {
      file = json_path;
    } else {
      L4_CHECK(file_exists(model_path), "{}: directory holds neither tokenizer.json nor tokenizer.model", path);
      file = model_path;
    }
  }
  const std::string contents = read_file(file);
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  Impl& im = *tok->impl_;
  im.path = file;
  im.sha = sha256_hex(contents);
  im.vocab = ends_with(file, ".json") ? load_hf_vocab(file, contents) : load_tiktoken_vocab(file, contents);
  const Vocab& v = im.vocab;
  im.regex = std::make_unique<SplitRegex>(v.pattern, v.keep_gaps, file);
  im.id_of_bytes.build(v.bytes_of, v.is_base);
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    im.byte_id[b] = im.id_of_bytes.find(std::string_view(&byte, 1));
  }
  if (v.kind == Vocab::Kind::kTiktoken) {
    for (size_t id = 0; id < v.bytes_of.size(); ++id) {
      if (!v.is_base[id]) continue;
      const std::string_view token = v.bytes_of[id];
      for (size_t k = 1; k < token.size(); ++k) {
        const int32_t left = im.id_of_bytes.find(token.substr(0, k)), right = im.id_of_bytes.find(token.substr(k));
        if (left >= 0 && right >= 0) im.pairs.set(left, right, {static_cast<int32_t>(id), static_cast<int32_t>(id)});
      }
    }
  } else {
    im.pairs.reserve(v.merges.size());
    for (const auto& [key, merge] : v.merges) {
      im.pairs.set(static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xFFFFFFFFu), {merge.first, merge.second});
    }
  }
  im.special.assign(v.bytes_of.size(), false);
  for (const AddedToken& a : v.added) {
    im.added_of[a.content] = &a;  // a repeated content: the later entry wins
    im.added_first_byte[static_cast<unsigned char>(a.content[0])] = true;
    im.added_lengths.push_back(a.content.size());
    im.has_plain_added = im.has_plain_added || !a.special;
    if (a.special) im.special[a.id] = true;
  }
  std::sort(im.added_lengths.begin(), im.added_lengths.end(), std::greater<size_t>());
  im.added_lengths.erase(std::unique(im.added_lengths.begin(), im.added_lengths.end()), im.added_lengths.end());
  return tok;
}

std::vector<int32_t> Tokenizer::encode_with_offsets(std::string_view text, bool parse_special,
                                                    std::vector<uint32_t>* offsets) const {
  L4_CHECK(text.size() < (size_t{1} << 32) - 1, "tokenizer: input of {} bytes is too long (limit 4 GiB)", text.size());
  std::string cleaned;
  if (!is_valid_utf8(text)) {
    cleaned = utf8_lossy(text);
    text = cleaned;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  // Slicing changes nothing unless a run could exceed 25,000 code points (so the text has more bytes).
  if (impl_->vocab.meta_slicing && text.size() > 25000) {
    for (std::string_view slice : meta_slices(text)) {
      impl_->encode_segment(slice, static_cast<uint32_t>(slice.data() - text.data()), parse_special, ids, offsets);
    }
  } else {
    impl_->encode_segment(text, 0, parse_special, ids, offsets);
  }
  return ids;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> ids = encode_with_offsets(text, parse_special, nullptr);
  if (add_bos) {
    L4_CHECK(bos_id() >= 0, "{}: has no <|begin_of_text|> token to prepend", impl_->path);
    ids.insert(ids.begin(), bos_id());
  }
  return ids;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += id_to_piece(id);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const { return utf8_lossy(decode_bytes(ids)); }

std::string Tokenizer::id_to_piece(int32_t id) const {
  const Vocab& v = impl_->vocab;
  L4_CHECK(id >= 0 && id < static_cast<int64_t>(v.bytes_of.size()) && !v.bytes_of[id].empty(),
           "token id {} is not in the tokenizer {} (vocab size {})", id, impl_->path, vocab_size());
  return v.bytes_of[id];
}

std::optional<int32_t> Tokenizer::special_id(std::string_view name) const {
  auto it = impl_->added_of.find(name);
  if (it == impl_->added_of.end()) return std::nullopt;
  return it->second->id;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < static_cast<int64_t>(impl_->special.size()) && impl_->special[id];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->vocab.bytes_of.size()); }
int64_t Tokenizer::num_base_tokens() const { return impl_->vocab.n_base; }
int32_t Tokenizer::bos_id() const { return special_id("<|begin_of_text|>").value_or(-1); }
int32_t Tokenizer::eot_id() const { return special_id("<|eot|>").value_or(-1); }
int32_t Tokenizer::eos_id() const { return special_id("<|end_of_text|>").value_or(-1); }
int32_t Tokenizer::pad_id() const { return special_id("<|finetune_right_pad|>").value_or(-1); }
std::string Tokenizer::sha256() const { return impl_->sha; }
const std::string& Tokenizer::path() const { return impl_->path; }
bool Tokenizer::is_tiktoken() const { return impl_->vocab.kind == Vocab::Kind::kTiktoken; }

}  // namespace l4::tokenizer
