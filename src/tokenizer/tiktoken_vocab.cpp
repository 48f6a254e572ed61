// tokenizer.model (tiktoken ranks) loader: "base64(token bytes) rank" per line, as Meta ships Llama 4.
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/base64.h"
#include "tokenizer/vocab.h"

namespace l4::tokenizer {
namespace {

// Meta's Tokenizer.O200K_PATTERN (the tiktoken file carries no pattern of its own).
constexpr const char* kO200kPattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::string shorten(std::string_view text) {
  return text.size() <= 60 ? std::string(text) : std::string(text.substr(0, 60)) + "...";
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !is_blank(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

Vocab load_tiktoken_vocab(const std::string& path, const std::string& contents) {
  Vocab v;
  v.kind = Vocab::Kind::kTiktoken;
  v.source = path;
  v.pattern = kO200kPattern;
  v.meta_slicing = true;
  std::unordered_map<std::string, size_t> line_of_token;
  std::unordered_map<int64_t, size_t> line_of_rank;
  std::vector<std::pair<std::string, int64_t>> entries;
  size_t line_no = 0;
  for (size_t pos = 0; pos < contents.size();) {
    size_t eol = contents.find('\n', pos);
    if (eol == std::string::npos) eol = contents.size();
    const std::string_view line(contents.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    const std::vector<std::string_view> f = fields(line);
    if (f.empty()) continue;
    L4_CHECK(f.size() == 2, "{}:{}: expected '<base64 token> <rank>', got '{}'", path, line_no, shorten(line));
    std::optional<std::string> token = base64_decode(f[0]);
    L4_CHECK(token.has_value(), "{}:{}: invalid base64 token '{}'", path, line_no, shorten(f[0]));
    int64_t rank = 0;
    bool ok = f[1].size() <= 9;
    for (char c : f[1]) ok = ok && c >= '0' && c <= '9';
    for (char c : f[1]) rank = rank * 10 + (c - '0');
    L4_CHECK(ok, "{}:{}: invalid rank '{}' (expected a non-negative integer)", path, line_no, shorten(f[1]));
    auto [rank_it, new_rank] = line_of_rank.emplace(rank, line_no);
    L4_CHECK(new_rank, "{}:{}: duplicate rank {} (already given on line {})", path, line_no, rank, rank_it->second);
    auto [tok_it, new_token] = line_of_token.emplace(*token, line_no);
    L4_CHECK(new_token, "{}:{}: duplicate token '{}' (already given on line {})", path, line_no, f[0],
             tok_it->second);
    entries.emplace_back(std::move(*token), rank);
  }
  L4_CHECK(!entries.empty(), "{}: no ranks found (expected lines of '<base64 token> <rank>')", path);
  const int64_t n = static_cast<int64_t>(entries.size());
  v.n_base = static_cast<int32_t>(n);
  v.bytes_of.assign(n + 2048, std::string());
  v.is_base.assign(n + 2048, false);
  for (auto& [token, rank] : entries) {
    L4_CHECK(rank < n, "{}:{}: rank {} is out of range: with {} tokens the ranks must be 0..{}", path,
             line_of_rank[rank], rank, n, n - 1);
    v.bytes_of[rank] = std::move(token);
    v.is_base[rank] = true;
  }
  for (int c = 0; c < 256; ++c) {
    L4_CHECK(line_of_token.count(std::string(1, static_cast<char>(c))), "{}: no rank for the single byte 0x{:02x}; "
             "byte-level BPE needs all 256 bytes", path, c);
  }
  const std::vector<std::string>& names = llama4_special_token_names();
  for (size_t i = 0; i < names.size(); ++i) {
    const int32_t id = static_cast<int32_t>(n + i);
    v.bytes_of[id] = names[i];
    v.added.push_back({names[i], id, true});
  }
  return v;
}

}  // namespace l4::tokenizer
