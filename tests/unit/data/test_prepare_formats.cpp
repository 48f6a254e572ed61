// The input formats prepare accepts (kinds recognised by content, directories of text files), the loss-mask
// choice (train_on) and fitting conversations into seq_len (overlong), with a byte-level stand-in encoder.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/conversation_fit.h"
#include "data/dataset_reader.h"
#include "data/input_files.h"
#include "data/prepare.h"
#include "prepare_test_encoder.h"
#include "synthetic_dataset.h"

namespace l4::data {
namespace {

namespace fs = std::filesystem;
using testing::ByteEncoder;
using testing::error_of;
using testing::fresh_dir;
using testing::kBos;
using testing::kRoleBase;
using testing::write_file;

constexpr uint32_t kSystem = kRoleBase, kUser = kRoleBase + 1, kAssistant = kRoleBase + 2;

PrepareReport run(const PrepareOptions& opt) {
  PrepareComm single;
  return prepare_dataset(opt, ByteEncoder(), single);
}

std::vector<Document> documents(const std::string& dir) {
  DatasetReader reader(dir);
  std::vector<Document> docs;
  for (uint64_t g = 0; g < reader.num_docs(); ++g) docs.push_back(reader.read_document(g));
  return docs;
}

// The stand-in encoding of a conversation: <bos>, then <role> and the text of each turn.
std::vector<uint32_t> conversation(const std::vector<std::pair<uint32_t, std::string>>& turns) {
  std::vector<uint32_t> ids{kBos};
  for (const auto& [role, text] : turns) {
    ids.push_back(role);
    for (unsigned char c : text) ids.push_back(c);
  }
  return ids;
}

ChatTurn turn(const std::string& role, const std::string& text) {
  return {role, {{false, text, ""}}, true};
}

TEST(PrepareFormats, JsonlKindsAreRecognisedWithoutAFormat) {
  const std::string dir = fresh_dir("prep_kinds");
  PrepareOptions opt;  // format auto
  opt.inputs = {
      write_file(dir + "/chat.jsonl",
                 R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})"
                 "\n"),
      write_file(
          dir + "/share.jsonl",
          R"({"id": 1, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})"
          "\n"),
      write_file(dir + "/alpaca.jsonl", R"({"instruction": "do", "input": "this", "output": "ok"})"
                                        "\n"
                                        R"({"instruction": "do", "input": "", "output": "ok"})"
                                        "\n"),
      write_file(dir + "/text.jsonl", R"({"text": "plain"})"
                                      "\n"),
      write_file(dir + "/corpus.txt", "a text file\n"),
  };
  opt.train_dir = dir + "/out";
  const PrepareReport r = run(opt);
  EXPECT_EQ(r.records, 6);
  EXPECT_EQ(r.files, 5);
  const std::vector<Document> docs = documents(opt.train_dir);
  ASSERT_EQ(docs.size(), 6u);
  const auto qa = conversation({{kUser, "q"}, {kAssistant, "a"}});
  EXPECT_EQ(docs[0].tokens, qa);
  EXPECT_EQ(docs[1].tokens, qa) << "ShareGPT human/gpt are user/assistant";
  EXPECT_EQ(docs[2].tokens, conversation({{kUser, "do\nthis"}, {kAssistant, "ok"}}));
  EXPECT_EQ(docs[3].tokens, conversation({{kUser, "do"}, {kAssistant, "ok"}}));
  EXPECT_EQ(docs[4].tokens.size(), 5u + 2);  // <bos> plain <eos>
  EXPECT_EQ(docs[5].tokens.size(), 11u + 2);
  EXPECT_EQ(docs[0].loss_mask, std::vector<uint8_t>({0, 0, 0, 0, 1}));
  const nlohmann::json sources = DatasetReader(opt.train_dir).meta()["sources"];
  EXPECT_EQ(sources[1]["kinds"], nlohmann::json({{"sharegpt", 1}}));
  EXPECT_EQ(sources[2]["kinds"], nlohmann::json({{"alpaca", 2}}));
  EXPECT_EQ(sources[4]["format"], "text");
}

TEST(PrepareFormats, ChatFormatRefusesTextRecordsAndMessageKeysAreChecked) {
  const std::string dir = fresh_dir("prep_chat_only");
  const std::string good =
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})";
  PrepareOptions opt;
  opt.format = "chat";
  opt.train_dir = dir + "/out";
  opt.inputs = {write_file(dir + "/a.jsonl", good + "\n" + R"({"text": "x"})" + "\n")};
  std::string err = error_of([&] { run(opt); });
  EXPECT_NE(err.find("a.jsonl:2: expected a conversation record"), std::string::npos) << err;

  opt.format = "auto";
  opt.inputs = {write_file(
      dir + "/b.jsonl",
      good + "\n\n" + R"({"messages": [{"role": "user", "content": "q", "name": "bob"}]})" + "\n")};
  err = error_of([&] { run(opt); });
  EXPECT_NE(err.find("b.jsonl:3: messages[0]: unknown key 'name' (expected role, content)"),
            std::string::npos)
      << err;
  opt.skip_bad_records = true;
  const PrepareReport r = run(opt);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(documents(opt.train_dir).size(), 1u);
}

TEST(PrepareFormats, DirectoriesStandForTheirTextFilesInPathOrder) {
  const std::string dir = fresh_dir("prep_dir");
  write_file(dir + "/in/b.txt", "bbb\n");
  write_file(dir + "/in/a.txt", "aa\n\nsecond\n");
  write_file(dir + "/in/sub/c.txt", "c\n");
  write_file(dir + "/in/notes.md", "not read\n");
  const std::vector<InputFile> files = resolve_inputs({dir + "/in"}, "auto");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, dir + "/in/a.txt");
  EXPECT_EQ(files[1].path, dir + "/in/b.txt");
  EXPECT_EQ(files[2].path, dir + "/in/sub/c.txt");
  PrepareOptions opt;
  opt.inputs = {dir + "/in"};
  opt.train_dir = dir + "/out";
  const PrepareReport r = run(opt);
  EXPECT_EQ(r.files, 3);
  const std::vector<Document> docs = documents(opt.train_dir);
  ASSERT_EQ(docs.size(), 4u);  // aa | second | bbb | c
  EXPECT_EQ(docs[2].tokens[1], static_cast<uint32_t>('b'));
  EXPECT_EQ(docs[3].tokens[1], static_cast<uint32_t>('c'));

  fs::create_directories(dir + "/empty");
  EXPECT_NE(error_of([&] { resolve_inputs({dir + "/empty"}, "text"); }).find("no .txt files"),
            std::string::npos);
  write_file(dir + "/array.json", "  [{\"text\": \"a\"}]");
  const std::string err = error_of([&] { resolve_inputs({dir + "/array.json"}, "auto"); });
  EXPECT_NE(err.find("a JSON array, not JSON lines"), std::string::npos) << err;
  EXPECT_NE(err.find("jq -c '.[]'"), std::string::npos) << err;
  EXPECT_EQ(resolve_inputs({write_file(dir + "/lines.json", "{\"text\": \"a\"}\n")}, "auto")[0].kind,
            InputKind::jsonl);
  EXPECT_NE(error_of([&] { resolve_inputs({dir + "/in"}, "jsnl"); }).find("did you mean 'jsonl'"),
            std::string::npos);
}

TEST(PrepareFormats, TrainOnChoosesTheTargets) {
  const std::vector<ChatTurn> turns = {turn("system", "s"), turn("user", "q1"), turn("assistant", "a1"),
                                       turn("user", "q2"), turn("assistant", "a2")};
  const ByteEncoder encoder;
  // <bos> <sys> s <user> q 1 <asst> a 1 <user> q 2 <asst> a 2
  const std::vector<uint8_t> assistant = {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1};
  const std::vector<uint8_t> last_turn = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
  for (const auto& [name, expected] : std::vector<std::pair<std::string, std::vector<uint8_t>>>{
           {"assistant", assistant}, {"last_turn", last_turn}, {"all", std::vector<uint8_t>(15, 1)}}) {
    std::vector<ChatTurn> marked = turns;
    const TrainOn train_on = train_on_from_name(name);
    mark_targets(marked, train_on);
    EXPECT_EQ(encode_conversation(encoder, marked, train_on).loss_mask, expected) << name;
  }
  EXPECT_NE(error_of([] { train_on_from_name("last_trun"); }).find("did you mean 'last_turn'"),
            std::string::npos);
}

TEST(PrepareFormats, TrainOnAllLeavesImageTokensOut) {
  const std::string dir = fresh_dir("prep_train_all");
  write_file(dir + "/im.png", "png bytes");
  PrepareOptions opt;
  opt.train_on = "all";
  opt.inputs = {write_file(
      dir + "/c.jsonl",
      R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "im.png"}, {"type": "text", "text": "q"}]}]})"
      "\n")};
  opt.train_dir = dir + "/out";
  run(opt);  // no assistant turn: fine when every token is trained
  const Document d = documents(opt.train_dir).at(0);
  ASSERT_EQ(d.images.size(), 1u);
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    const bool image = i >= d.images[0].token_begin && i < d.images[0].token_end;
    EXPECT_EQ(d.loss_mask[i], image ? 0 : 1) << i;
  }
}

TEST(PrepareFormats, OverlongConversationsSplitAtExchanges) {
  const ByteEncoder encoder;
  // <bos> + system "sys" = 5 tokens; three exchanges of <user> q n <assistant> answer n = 11 tokens each.
  std::vector<ChatTurn> turns = {turn("system", "sys")};
  for (const char* n : {"1", "2", "3"}) {
    turns.push_back(turn("user", std::string("q") + n));
    turns.push_back(turn("assistant", std::string("answer") + n));
  }
  mark_targets(turns, TrainOn::assistant);
  const auto exchange = [](const char* n) {
    return std::vector<std::pair<uint32_t, std::string>>{{kUser, std::string("q") + n},
                                                         {kAssistant, std::string("answer") + n}};
  };
  const auto piece = [&](std::vector<const char*> ns) {
    std::vector<std::pair<uint32_t, std::string>> t = {{kSystem, "sys"}};
    for (const char* n : ns) {
      const auto e = exchange(n);
      t.insert(t.end(), e.begin(), e.end());
    }
    return conversation(t);
  };
  // Whole: 5 + 3 x 11 = 38 tokens. seq_len 29 fits the system turn and two exchanges: [1 2] [3].
  FittedConversation fit = fit_conversation(encoder, turns, TrainOn::assistant, 29, Overlong::split);
  ASSERT_EQ(fit.documents.size(), 2u);
  EXPECT_TRUE(fit.was_split);
  EXPECT_FALSE(fit.truncated);
  EXPECT_EQ(fit.documents[0].tokens, piece({"1", "2"}));
  EXPECT_EQ(fit.documents[1].tokens, piece({"3"}));
  EXPECT_EQ(fit.documents[1].loss_mask[5], 0) << "the continuation starts with its question, not a target";
  // seq_len 15: one exchange per piece (16 tokens) does not fit either: prompt kept, answer cut at 15.
  fit = fit_conversation(encoder, turns, TrainOn::assistant, 15, Overlong::split);
  ASSERT_EQ(fit.documents.size(), 3u);
  EXPECT_TRUE(fit.truncated);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(fit.documents[k].tokens.size(), 15u);
    EXPECT_EQ(fit.documents[k].tokens[5], kUser);
  }
  // last_turn: only the piece holding the last answer has a target; the others are left out.
  std::vector<ChatTurn> last = turns;
  mark_targets(last, TrainOn::last_turn);
  fit = fit_conversation(encoder, last, TrainOn::last_turn, 29, Overlong::split);
  ASSERT_EQ(fit.documents.size(), 1u);
  EXPECT_EQ(fit.documents[0].tokens, piece({"3"}));
  // truncate keeps the first seq_len tokens; drop leaves the conversation out; a fitting one is untouched.
  fit = fit_conversation(encoder, turns, TrainOn::assistant, 29, Overlong::truncate);
  ASSERT_EQ(fit.documents.size(), 1u);
  const std::vector<uint32_t> whole = piece({"1", "2", "3"});
  EXPECT_EQ(fit.documents[0].tokens, std::vector<uint32_t>(whole.begin(), whole.begin() + 29));
  fit = fit_conversation(encoder, turns, TrainOn::assistant, 29, Overlong::drop);
  EXPECT_TRUE(fit.dropped);
  EXPECT_TRUE(fit.documents.empty());
  fit = fit_conversation(encoder, turns, TrainOn::assistant, 38, Overlong::drop);
  ASSERT_EQ(fit.documents.size(), 1u);
  EXPECT_FALSE(fit.was_split || fit.truncated || fit.dropped);
}

TEST(PrepareFormats, OverlongCountsReachTheReportAndMeta) {
  const std::string dir = fresh_dir("prep_overlong");
  std::string lines;
  for (int i = 0; i < 4; ++i) {
    lines += fmt::format(
        R"({{"messages": [{{"role": "user", "content": "question {}"}}, {{"role": "assistant", "content": "{}"}}, )"
        R"({{"role": "user", "content": "again"}}, {{"role": "assistant", "content": "{}"}}]}})"
        "\n",
        i, std::string(static_cast<size_t>(10 * i), 'x'), std::string(10, 'y'));
  }
  PrepareOptions opt;
  opt.inputs = {write_file(dir + "/c.jsonl", lines)};
  opt.train_dir = dir + "/out";
  // Conversations of 30, 40, 50 and 60 tokens: exchanges of 12 + 10 i and 17 tokens after <bos>.
  opt.seq_len = 40;
  const PrepareReport r = run(opt);
  EXPECT_EQ(r.conversations_split, 2);
  EXPECT_EQ(r.conversations_truncated, 1);  // the last one's first exchange alone takes 43 tokens
  const std::vector<Document> docs = documents(opt.train_dir);
  EXPECT_EQ(docs.size(), 6u);
  for (const Document& d : docs) EXPECT_LE(d.tokens.size(), 40u);
  const nlohmann::json meta = DatasetReader(opt.train_dir).meta();
  EXPECT_EQ(meta["seq_len"], 40);
  EXPECT_EQ(meta["overlong"], "split");
  EXPECT_EQ(meta["train_on"], "assistant");
  EXPECT_EQ(meta["sources"][0]["conversations_split"], 2);
}

}  // namespace
}  // namespace l4::data
