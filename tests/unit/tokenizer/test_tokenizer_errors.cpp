// Broken tokenizer files fail with l4::Error naming the file and the line or key at fault.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizer/tokenizer.h"

namespace l4::tokenizer {
namespace {

const std::string kDir = std::string(L4_SOURCE_DIR) + "/data/tokenizer";

std::string write_temp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

std::string load_error(const std::string& path) {
  try {
    Tokenizer::load(path);
  } catch (const l4::Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string bundled_model_with_line(size_t line_index, const std::string& replacement) {
  std::string contents = read_file(kDir + "/tokenizer.model");
  size_t pos = 0;
  for (size_t i = 0; i < line_index; ++i) pos = contents.find('\n', pos) + 1;
  const size_t eol = contents.find('\n', pos);
  return contents.substr(0, pos) + replacement + contents.substr(eol);
}

TEST(TokenizerErrors, BadBase64NamesFileAndLine) {
  const std::string path = write_temp("bad_b64.model", bundled_model_with_line(2, "Zm9v! 2"));
  const std::string msg = load_error(path);
  EXPECT_NE(msg.find(path + ":3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("base64"), std::string::npos) << msg;
}

TEST(TokenizerErrors, DuplicateRankNamesBothLines) {
  const std::string path = write_temp("dup_rank.model", bundled_model_with_line(9, "AAAA 3"));
  const std::string msg = load_error(path);
  EXPECT_NE(msg.find(path + ":10:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("duplicate rank 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 4"), std::string::npos) << msg;
}

TEST(TokenizerErrors, MalformedRankLines) {
  EXPECT_NE(load_error(write_temp("one_field.model", "IQ==\n")).find(":1: expected '<base64 token> <rank>'"),
            std::string::npos);
  EXPECT_NE(load_error(write_temp("neg_rank.model", "IQ== -1\n")).find(":1: invalid rank '-1'"), std::string::npos);
  EXPECT_NE(load_error(write_temp("gap.model", "IQ== 0\nIg== 5\n")).find("rank 5 is out of range"), std::string::npos);
  EXPECT_NE(load_error(write_temp("few.model", "IQ== 0\nIg== 1\n")).find("no rank for the single byte 0x00"),
            std::string::npos);
  EXPECT_NE(load_error(write_temp("empty.model", "\n\n")).find("no ranks found"), std::string::npos);
}

TEST(TokenizerErrors, BrokenJsonNamesKey) {
  const std::string good = read_file(kDir + "/tokenizer.json");
  const nlohmann::json base = nlohmann::json::parse(good);
  const auto edit = [&](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json j = base;
    change(j);
    return j.dump();
  };
  struct Case {
    std::string name, contents, expected;
  };
  const std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() / 2), "not valid JSON"},
      {"no_vocab", edit([](auto& j) { j["model"].erase("vocab"); }), "key 'model.vocab' is missing"},
      {"bad_merge", edit([](auto& j) { j["model"]["merges"][5][0] = "no-such-token"; }), "key 'model.merges[5]'"},
      {"bad_model", edit([](auto& j) { j["model"]["type"] = "WordPiece"; }), "key 'model.type'"},
      {"bad_added", edit([](auto& j) { j["added_tokens"][3]["id"] = "x"; }), "key 'added_tokens[3].id'"},
      {"bad_pre", edit([](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; }),
       "pre_tokenizer.Split.behavior"},
      {"bad_regex", edit([](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "([a-z]+"; }),
       "pattern does not compile"},
      {"bad_vocab_id", edit([](auto& j) { j["model"]["vocab"]["the"] = -4; }), "key 'model.vocab[\"the\"]'"},
  };
  for (const Case& c : cases) {
    const std::string path = write_temp(c.name + ".json", c.contents);
    const std::string msg = load_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.name << ": " << msg;
  }
}

TEST(TokenizerErrors, MissingFileOrDirectory) {
  EXPECT_NE(load_error("/nonexistent/tokenizer.model").find("/nonexistent/tokenizer.model"), std::string::npos);
  EXPECT_NE(load_error(::testing::TempDir()).find("neither tokenizer.json nor tokenizer.model"), std::string::npos);
}

}  // namespace
}  // namespace l4::tokenizer
