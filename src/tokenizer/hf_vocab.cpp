// tokenizer.json (HF tokenizers) loader for byte-level BPE: Split(regex) + ByteLevel pre-tokenizer,
// BPE model with vocab and merges, added tokens. Anything the encoder would not reproduce exactly is
// rejected with the key that holds it.
#include <nlohmann/json.hpp>

#include <array>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace l4::tokenizer {
namespace {

using json = nlohmann::json;

// GPT-2's bytes_to_unicode, inverted: code point of a byte-level character -> byte (or -1).
int byte_of_char(char32_t cp) {
  static const std::array<int, 324> table = [] {
    std::array<int, 324> t{};
    t.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[printable ? b : 256 + extra++] = b;
    }
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

// Byte-level token text -> raw bytes; nullopt when a character is outside the 256-character alphabet.
std::optional<std::string> unbyte(std::string_view text) {
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_sequence_length(text, pos);
    if (len == 0) return std::nullopt;
    const int b = byte_of_char(utf8_code_point(text, pos, len));
    if (b < 0) return std::nullopt;
    out.push_back(static_cast<char>(b));
    pos += len;
  }
  return out;
}

const json& require(const json& obj, const std::string& key, const std::string& path, const std::string& where) {
  L4_CHECK(obj.is_object() && obj.contains(key), "{}: key '{}{}' is missing", path, where, key);
  return obj.at(key);
}

bool null_or_empty(const json& obj, const char* key) {
  return !obj.contains(key) || obj[key].is_null() || (obj[key].is_string() && obj[key].get<std::string>().empty());
}

void read_pre_tokenizer(const json& root, const std::string& path, Vocab& v) {
  const json& pre = require(root, "pre_tokenizer", path, "");
  std::vector<const json*> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    for (const json& s : require(pre, "pretokenizers", path, "pre_tokenizer.")) steps.push_back(&s);
  } else {
    steps.push_back(&pre);
  }
  bool have_split = false, have_byte_level = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = *steps[i];
    const std::string type = s.is_object() ? s.value("type", "") : "";
    if (type == "Split") {
      const json& pattern = require(s, "pattern", path, "pre_tokenizer.Split.");
      L4_CHECK(pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string(),
               "{}: key 'pre_tokenizer.Split.pattern': expected {{\"Regex\": \"...\"}}", path);
      L4_CHECK(s.value("behavior", "") == "Isolated" && !s.value("invert", false),
               "{}: key 'pre_tokenizer.Split.behavior': only \"Isolated\" without invert is supported", path);
      L4_CHECK(!have_split, "{}: key 'pre_tokenizer': only one Split step is supported", path);
      v.pattern = pattern["Regex"].get<std::string>();
      have_split = true;
    } else if (type == "ByteLevel") {
      L4_CHECK(!s.value("add_prefix_space", false), "{}: key 'pre_tokenizer.ByteLevel.add_prefix_space': "
               "only false is supported", path);
      L4_CHECK(!s.value("use_regex", true), "{}: key 'pre_tokenizer.ByteLevel.use_regex': expected false "
               "after a Split step", path);
      have_byte_level = true;
    } else {
      L4_FAIL("{}: key 'pre_tokenizer': unsupported step '{}' (expected Split(Regex) and ByteLevel)", path,
              type.empty() ? s.dump() : type);
    }
  }
  L4_CHECK(have_split && have_byte_level, "{}: key 'pre_tokenizer': expected a Split(Regex) step followed by "
           "ByteLevel (a byte-level BPE tokenizer)", path);
  v.keep_gaps = true;
}

}  // namespace

Vocab load_hf_vocab(const std::string& path, const std::string& contents) {
  json root;
  try {
    root = json::parse(contents);
  } catch (const json::parse_error& e) {
    L4_FAIL("{}: not valid JSON: {}", path, e.what());
  }
  L4_CHECK(root.is_object(), "{}: expected a JSON object at the top level", path);
  Vocab v;
  v.kind = Vocab::Kind::kHfBpe;
  v.source = path;
  L4_CHECK(!root.contains("normalizer") || root["normalizer"].is_null(),
           "{}: key 'normalizer': only null is supported (byte-level BPE)", path);
  read_pre_tokenizer(root, path, v);
  if (root.contains("decoder") && !root["decoder"].is_null()) {
    L4_CHECK(root["decoder"].value("type", "") == "ByteLevel", "{}: key 'decoder.type': expected \"ByteLevel\"",
             path);
  }

  const json& model = require(root, "model", path, "");
  L4_CHECK(model.is_object() && model.value("type", "BPE") == "BPE", "{}: key 'model.type': expected \"BPE\"", path);
  L4_CHECK(!model.contains("dropout") || model["dropout"].is_null() || model["dropout"] == 0,
           "{}: key 'model.dropout': only null is supported", path);
  L4_CHECK(null_or_empty(model, "continuing_subword_prefix") && null_or_empty(model, "end_of_word_suffix"),
           "{}: keys 'model.continuing_subword_prefix'/'model.end_of_word_suffix': only null is supported", path);
  L4_CHECK(!model.value("byte_fallback", false), "{}: key 'model.byte_fallback': only false is supported", path);
  v.ignore_merges = model.value("ignore_merges", false);

  const json& vocab = require(model, "vocab", path, "model.");
  L4_CHECK(vocab.is_object() && !vocab.empty(), "{}: key 'model.vocab': expected an object of token -> id", path);
  std::unordered_map<std::string, int32_t> id_of;  // byte-level text -> id
  int64_t max_id = -1;
  for (const auto& [text, id] : vocab.items()) {
    L4_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 30),
             "{}: key 'model.vocab[\"{}\"]': expected a non-negative integer id", path, text);
    max_id = std::max<int64_t>(max_id, id.get<int64_t>());
    id_of[text] = id.get<int32_t>();
  }
  v.n_base = static_cast<int32_t>(vocab.size());
  const json& added = root.contains("added_tokens") ? root["added_tokens"] : json::array();
  L4_CHECK(added.is_array(), "{}: key 'added_tokens': expected an array", path);
  // HF ignores the ids written in added_tokens: each token keeps its vocab id if it has one, otherwise it
  // gets the next id after the vocab / the last added token (AddedVocabulary::add_tokens). Same here.
  const int64_t model_size = static_cast<int64_t>(vocab.size());
  int64_t max_added = -1;
  std::unordered_map<std::string, int32_t> added_id;
  for (size_t i = 0; i < added.size(); ++i) {
    const std::string where = fmt::format("added_tokens[{}]", i);
    const json& a = added[i];
    const json& id = require(a, "id", path, where + ".");
    const json& content = require(a, "content", path, where + ".");
    L4_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 30),
             "{}: key '{}.id': expected a non-negative integer", path, where);
    L4_CHECK(content.is_string() && !content.get<std::string>().empty(), "{}: key '{}.content': expected a "
             "non-empty string", path, where);
    for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
      L4_CHECK(!a.value(flag, false), "{}: key '{}.{}': only false is supported", path, where, flag);
    }
    const std::string text = content.get<std::string>();
    int64_t assigned;
    if (auto it = id_of.find(text); it != id_of.end()) {
      assigned = it->second;
    } else if (auto it2 = added_id.find(text); it2 != added_id.end()) {
      assigned = it2->second;
    } else {
      assigned = max_added < 0 ? model_size : (max_added >= model_size ? max_added + 1 : model_size);
    }
    if (assigned != id.get<int64_t>()) {
      L4_LOG_WARN("{}: {} '{}' has id {} in the file, but HF tokenizers assigns it id {}; using {}", path, where,
                  text, id.get<int64_t>(), assigned, assigned);
    }
    max_added = std::max(max_added, assigned);
    added_id[text] = static_cast<int32_t>(assigned);
    v.added.push_back({text, static_cast<int32_t>(assigned), a.value("special", false)});
    max_id = std::max<int64_t>(max_id, assigned);
  }
  v.bytes_of.assign(max_id + 1, std::string());
  v.is_base.assign(max_id + 1, false);
  for (const auto& [text, id] : id_of) {
    std::optional<std::string> bytes = unbyte(text);
    L4_CHECK(bytes.has_value(), "{}: key 'model.vocab[\"{}\"]': token has a character outside the byte-level "
             "alphabet", path, text);
    v.bytes_of[id] = std::move(*bytes);
    v.is_base[id] = true;
  }
  for (const AddedToken& a : v.added) {
    if (!v.is_base[a.id]) v.bytes_of[a.id] = a.content;
  }
  if (!null_or_empty(model, "unk_token")) {
    const std::string unk = model["unk_token"].get<std::string>();
    auto it = id_of.find(unk);
    L4_CHECK(it != id_of.end(), "{}: key 'model.unk_token': '{}' is not in model.vocab", path, unk);
    v.unk_id = it->second;
  }

  const json& merges = require(model, "merges", path, "model.");
  L4_CHECK(merges.is_array(), "{}: key 'model.merges': expected an array", path);
  v.merges.reserve(merges.size() * 2);
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string left, right;
    if (m.is_string()) {  // older format: "left right"
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      L4_CHECK(space != std::string::npos && space > 0 && space + 1 < s.size() && s.find(' ', space + 1) == std::string::npos,
               "{}: key 'model.merges[{}]': expected \"left right\", got \"{}\"", path, i, s);
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else {
      L4_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
               "{}: key 'model.merges[{}]': expected [\"left\", \"right\"]", path, i);
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    }
    const auto l = id_of.find(left), r = id_of.find(right), merged = id_of.find(left + right);
    L4_CHECK(l != id_of.end() && r != id_of.end(), "{}: key 'model.merges[{}]': token '{}' is not in model.vocab",
             path, i, l == id_of.end() ? left : right);
    L4_CHECK(merged != id_of.end(), "{}: key 'model.merges[{}]': merged token '{}' is not in model.vocab", path, i,
             left + right);
    const uint64_t key = (static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second);
    v.merges[key] = {static_cast<int32_t>(i), merged->second};  // a repeated pair: the last wins, as in HF
  }
  return v;
}

}  // namespace l4::tokenizer
