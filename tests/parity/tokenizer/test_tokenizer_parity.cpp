// Token ids equal tiktoken (+ Meta's slicing) for tokenizer.model and HF tokenizers for tokenizer.json,
// decode(encode(x)) == x, decode of cut UTF-8 equals both references, and the chat template equals
// transformers' apply_chat_template (ids and assistant mask). References: tokenizer_oracle.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "tokenizer/base64.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace l4::tokenizer {
namespace {

using json = nlohmann::json;

const json& data(const char* file) {
  static std::map<std::string, json> cache;
  auto it = cache.find(file);
  if (it == cache.end()) {
    std::ifstream in(std::string(L4_TEST_DATA_DIR) + "/tokenizer/" + file);
    EXPECT_TRUE(in.good()) << "missing oracle output " << file << " (run ctest with the fixture)";
    std::stringstream ss;
    ss << in.rdbuf();
    it = cache.emplace(file, json::parse(ss.str())).first;
  }
  return it->second;
}

std::string first_difference(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "first difference at token " + std::to_string(i) + " (lengths " + std::to_string(got.size()) + " vs " +
         std::to_string(want.size()) + ")";
}

std::string b64_or_empty(const std::string& s) { return s.empty() ? "" : base64_decode(s).value(); }

void check_ids(const std::string& tokenizer_name, bool tiktoken_format) {
  const json& all = data("tokenizer_cases.json");
  const json& ref = all["tokenizers"][tokenizer_name];
  const std::string dir = ref["dir"];
  const auto tok = Tokenizer::load(dir + (tiktoken_format ? "/tokenizer.model" : "/tokenizer.json"));
  const std::string key = tiktoken_format ? "tiktoken" : "hf";
  const json& cases = all["cases"];
  ASSERT_GT(cases.size(), 300u);
  int compared = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string name = cases[i]["name"];
    const std::string text = b64_or_empty(cases[i]["bytes_b64"]);
    const std::vector<int32_t> want = ref[key][i], want_special = ref[key + "_special"][i];
    const std::vector<int32_t> got = tok->encode(text), got_special = tok->encode(text, false, true);
    EXPECT_EQ(got, want) << name << ": " << first_difference(got, want);
    EXPECT_EQ(got_special, want_special) << name << " (parse_special): " << first_difference(got_special, want_special);
    if (!tiktoken_format) {
      const std::vector<int32_t> want_bos = ref["hf_bos"][i];
      EXPECT_EQ(tok->encode(text, true), want_bos) << name << " (add_bos)";
    }
    EXPECT_EQ(tok->decode(got), utf8_lossy(text)) << name << ": decode(encode(x)) != x";
    if (is_valid_utf8(text)) {
      EXPECT_EQ(tok->decode_bytes(got), text) << name;
    }
    ++compared;
  }
  for (const json& d : ref["decode"]) {
    const std::vector<int32_t> ids = d["ids"];
    EXPECT_EQ(tok->decode(ids), b64_or_empty(d[key])) << "decode " << d["ids"].dump();
  }
  EXPECT_EQ(compared, static_cast<int>(cases.size()));
}

TEST(TokenizerParity, BundledTiktokenMatchesTiktoken) { check_ids("bundled", true); }
TEST(TokenizerParity, BundledJsonMatchesHfTokenizers) { check_ids("bundled", false); }
TEST(TokenizerParity, MultilingualTiktokenMatchesTiktoken) { check_ids("multilingual", true); }
TEST(TokenizerParity, MultilingualJsonMatchesHfTokenizers) { check_ids("multilingual", false); }
// tokenizer.json written by transformers' TikTokenConverter from our tokenizer.model (the HF Llama 4 layout).
TEST(TokenizerParity, ConvertedJsonMatchesHfTokenizers) { check_ids("converted", false); }
// Merges written as "left right" strings and ignore_merges off: whole-word hits must still merge.
TEST(TokenizerParity, LegacyMergesJsonMatchesHfTokenizers) { check_ids("multilingual_legacy", false); }

std::vector<ChatMessage> messages_of(const json& conversation) {
  std::vector<ChatMessage> out;
  for (const json& m : conversation["messages"]) {
    ChatMessage msg;
    msg.role = m["role"];
    msg.content = m["content"];
    msg.num_images = m["num_images"];
    for (const json& call : m["tool_calls"]) msg.tool_calls.push_back({call["name"], call["arguments_json"]});
    out.push_back(msg);
  }
  return out;
}

TEST(TokenizerParity, ChatTemplateMatchesTransformers) {
  const json& chats = data("chat_cases.json");
  ASSERT_GE(chats.size(), 6u);
  for (const char* file : {"tokenizer.json", "tokenizer.model"}) {
    const auto tok = Tokenizer::load(std::string(L4_SOURCE_DIR) + "/data/tokenizer/" + file);
    for (const json& c : chats) {
      const std::string name = std::string(c["name"]) + " (" + file + ")";
      const std::vector<ChatMessage> messages = messages_of(c);
      const bool gen = c["add_generation_prompt"];
      EXPECT_EQ(render_chat(*tok, messages, gen), c["text"].get<std::string>()) << name;
      const EncodedChat enc = encode_chat(*tok, messages, gen);
      const std::vector<int32_t> want_ids = c["ids"];
      const std::vector<uint8_t> want_mask = c["assistant_mask"];
      EXPECT_EQ(enc.ids, want_ids) << name << ": " << first_difference(enc.ids, want_ids);
      EXPECT_EQ(enc.assistant_mask, want_mask) << name;
    }
  }
}

}  // namespace
}  // namespace l4::tokenizer
