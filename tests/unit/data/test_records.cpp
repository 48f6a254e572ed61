// Record kinds recognised by their keys, and each kind's parsing: chat messages, ShareGPT, Alpaca, text.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/records.h"
#include "prepare_test_encoder.h"

namespace l4::data {
namespace {

using nlohmann::json;
using testing::error_of;

std::string text_of(const ChatTurn& t) {
  std::string s;
  for (const ChatPart& p : t.parts) s += p.text;
  return s;
}

Record parse(const std::string& line) {
  const json j = parse_json_line(line);
  return parse_record(j, detect_record_kind(j), ".");
}

TEST(Records, KindsFollowTheKeys) {
  EXPECT_EQ(detect_record_kind(json::parse(R"({"messages": []})")), RecordKind::chat);
  EXPECT_EQ(detect_record_kind(json::parse(R"({"conversations": [], "id": 3})")), RecordKind::sharegpt);
  EXPECT_EQ(detect_record_kind(json::parse(R"({"instruction": "a", "output": "b"})")), RecordKind::alpaca);
  EXPECT_EQ(detect_record_kind(json::parse(R"({"text": "t", "source": "web"})")), RecordKind::text);
  // Alpaca exports often carry the rendered prompt as "text": the structured fields win.
  EXPECT_EQ(
      detect_record_kind(json::parse(R"({"instruction": "a", "input": "", "output": "b", "text": "x"})")),
      RecordKind::alpaca);
  EXPECT_EQ(detect_record_kind(json::parse(R"({"messages": [], "text": "rendered"})")), RecordKind::chat);
  const std::string err =
      error_of([] { detect_record_kind(json::parse(R"({"prompt": "a", "completion": "b"})")); });
  EXPECT_NE(err.find("found 'completion', 'prompt'"), std::string::npos) << err;
  EXPECT_NE(error_of([] { detect_record_kind(json::parse("[1, 2]")); }).find("expected a JSON object"),
            std::string::npos);
}

TEST(Records, ShareGptRolesMapToChatRoles) {
  const Record r = parse(
      R"({"id": "x1", "system": "Be brief.", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}, {"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "4"}]})");
  ASSERT_EQ(r.kind, RecordKind::sharegpt);
  ASSERT_EQ(r.turns.size(), 5u);
  const std::vector<std::string> roles = {"system", "user", "assistant", "user", "assistant"};
  const std::vector<std::string> texts = {"Be brief.", "Hi?", "Hello.", "2+2?", "4"};
  for (size_t i = 0; i < roles.size(); ++i) {
    EXPECT_EQ(r.turns[i].role, roles[i]);
    EXPECT_EQ(text_of(r.turns[i]), texts[i]);
  }
  const std::string bad_from =
      error_of([] { parse(R"({"conversations": [{"from": "bot", "value": "x"}]})"); });
  EXPECT_NE(bad_from.find("conversations[0]: unknown \"from\" 'bot'"), std::string::npos) << bad_from;
  const std::string bad_key =
      error_of([] { parse(R"({"conversations": [{"from": "human", "value": "x", "weight": 0}]})"); });
  EXPECT_NE(bad_key.find("conversations[0]: unknown key 'weight' (expected from, value)"), std::string::npos)
      << bad_key;
  EXPECT_NE(error_of([] { parse(R"({"conversations": [{"from": "human"}]})"); }).find("\"value\" is missing"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse(R"({"image": "a.png", "conversations": [{"from": "human", "value": "<image>"}]})");
            }).find("images in ShareGPT records are not supported"),
            std::string::npos);
}

TEST(Records, AlpacaIsOneUserTurnAndOneAnswer) {
  const Record with_input = parse(R"({"instruction": "Translate.", "input": "Bonjour", "output": "Hello"})");
  ASSERT_EQ(with_input.turns.size(), 2u);
  EXPECT_EQ(with_input.turns[0].role, "user");
  EXPECT_EQ(text_of(with_input.turns[0]), "Translate.\nBonjour");  // instruction, newline, input
  EXPECT_EQ(with_input.turns[1].role, "assistant");
  EXPECT_EQ(text_of(with_input.turns[1]), "Hello");
  // An empty or null input adds nothing (no trailing newline); a system field opens the conversation.
  for (const char* line : {R"({"instruction": "Say hi.", "input": "", "output": "hi"})",
                           R"({"instruction": "Say hi.", "input": null, "output": "hi"})",
                           R"({"instruction": "Say hi.", "output": "hi"})"}) {
    const Record r = parse(line);
    ASSERT_EQ(r.turns.size(), 2u) << line;
    EXPECT_EQ(text_of(r.turns[0]), "Say hi.") << line;
  }
  const Record sys = parse(R"({"system": "S", "instruction": "I", "output": "O"})");
  ASSERT_EQ(sys.turns.size(), 3u);
  EXPECT_EQ(sys.turns[0].role, "system");
  EXPECT_NE(error_of([] { parse(R"({"instruction": "I"})"); }).find("\"output\" is missing"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse(R"({"instruction": "I", "output": 3})"); }).find("\"output\" must be a string"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              parse(R"({"instruction": "I", "output": "O", "history": [["a", "b"]]})");
            }).find("\"history\" is not supported"),
            std::string::npos);
}

TEST(Records, UnknownMessageKeysAreErrors) {
  const std::string err = error_of([] {
    parse(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "contents": "a"}]})");
  });
  EXPECT_NE(
      err.find("messages[1]: unknown key 'contents' (expected role, content) (did you mean 'content'?)"),
      std::string::npos)
      << err;
  const std::string calls = error_of([] {
    parse(
        R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": []}]})");
  });
  EXPECT_NE(calls.find("messages[1]: unknown key 'tool_calls'"), std::string::npos) << calls;
  const std::string part = error_of([] {
    parse(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "q", "cache": 1}]}]})");
  });
  EXPECT_NE(part.find("messages[0].content[0]: unknown key 'cache'"), std::string::npos) << part;
  // Top-level metadata is not content: ignored.
  const Record r = parse(R"({"id": 7, "messages": [{"role": "user", "content": "q"}], "source": "x"})");
  EXPECT_EQ(r.turns.size(), 1u);
}

TEST(Records, TextRecords) {
  EXPECT_EQ(parse(R"({"text": "hello", "meta": {"lang": "en"}})").text, "hello");
  EXPECT_NE(error_of([] { parse(R"({"text": 5})"); }).find("string field \"text\""), std::string::npos);
  EXPECT_NE(error_of([] { parse_json_line("{\"text\": "); }).find("invalid JSON"), std::string::npos);
}

}  // namespace
}  // namespace l4::data
