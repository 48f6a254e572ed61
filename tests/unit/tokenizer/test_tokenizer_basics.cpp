// The bundled tokenizer in both formats: Llama 4 special-token layout, special parsing, round trips,
// pathological inputs, concurrency, and a hand-made rank file whose merges can be worked out by hand.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizer/sha256.h"
#include "tokenizer/tokenizer.h"

namespace l4::tokenizer {
namespace {

const std::string kDir = std::string(L4_SOURCE_DIR) + "/data/tokenizer";

class BundledTokenizer : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<Tokenizer> tok = Tokenizer::load(kDir + "/" + GetParam());
};

TEST_P(BundledTokenizer, Llama4SpecialTokenLayout) {
  EXPECT_EQ(tok->vocab_size(), 10240);
  EXPECT_EQ(tok->num_base_tokens(), 8192);
  EXPECT_EQ(tok->bos_id(), 8192);
  EXPECT_EQ(tok->eos_id(), 8193);
  EXPECT_EQ(tok->eot_id(), 8200);
  EXPECT_EQ(tok->pad_id(), 8210);
  EXPECT_EQ(tok->special_id("<|eom|>"), 8199);
  EXPECT_EQ(tok->special_id("<|header_start|>"), 8197);
  EXPECT_EQ(tok->special_id("<|python_start|>"), 8208);
  EXPECT_EQ(tok->special_id("<|image_start|>"), 8272);
  EXPECT_EQ(tok->special_id("<|image|>"), 8282);
  EXPECT_EQ(tok->special_id("<|patch|>"), 8284);
  EXPECT_EQ(tok->special_id("<|reasoning_thinking_start|>"), 8192 + 1142);
  EXPECT_EQ(tok->special_id("<|reserved_special_token_903|>"), 10239);
  EXPECT_FALSE(tok->special_id("<|not_a_token|>").has_value());
  EXPECT_TRUE(tok->is_special(8200));
  EXPECT_FALSE(tok->is_special(100));
  EXPECT_EQ(tok->id_to_piece(8284), "<|patch|>");
  EXPECT_THROW(tok->id_to_piece(10240), l4::Error);
  EXPECT_THROW(tok->id_to_piece(-1), l4::Error);
  EXPECT_EQ(tok->sha256(), sha256_hex(read_file(kDir + "/" + GetParam())));
}

TEST_P(BundledTokenizer, SpecialTokensParsedOnlyWhenAsked) {
  const std::string text = "Hi<|eot|>";
  const std::vector<int32_t> parsed = tok->encode(text, false, true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(parsed.back(), 8200);
  const std::vector<int32_t> plain = tok->encode(text);
  EXPECT_GT(plain.size(), parsed.size());
  for (int32_t id : plain) EXPECT_LT(id, 8192);
  EXPECT_EQ(tok->decode(plain), text);
  EXPECT_EQ(tok->decode(parsed), text);
  const std::vector<int32_t> with_bos = tok->encode(text, true);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos[0], 8192);
}

TEST_P(BundledTokenizer, RoundTripsAndCleansInvalidUtf8) {
  for (const std::string text : {"", " ", "In the beginning God created the heavens and the earth.",
                                 "def f(x):\n\treturn x ** 2  # \xF0\x9F\xA6\x99\r\n", "\xE0\xB8\xAA\xE0\xB8\xA7 12345"}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
  }
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
}

TEST_P(BundledTokenizer, PathologicalInputsFinish) {
  // Linear-time requirement: each of these must finish well inside the test timeout.
  const std::vector<std::string> inputs = {std::string(1 << 20, 'a'), std::string(100000, ' '),
                                           std::string(200000, '\n'), std::string(300000, '7')};
  for (const std::string& text : inputs) {
    const std::vector<int32_t> ids = tok->encode(text);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok->decode_bytes(ids), text);
  }
  std::string han;
  for (int i = 0; i < 200000; ++i) han += "\xE4\xB8\xAD";  // U+4E2D, 600 kB
  EXPECT_EQ(tok->decode_bytes(tok->encode(han)), han);
}

TEST_P(BundledTokenizer, ConcurrentEncodeIsDeterministic) {
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i) lines.push_back("line " + std::to_string(i * 7919) + ": the llama's wool, \xC3\xA9t\xC3\xA9 ");
  std::vector<std::vector<int32_t>> expected;
  for (const auto& l : lines) expected.push_back(tok->encode(l));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = 0; i < lines.size(); ++i) mismatches[t] += tok->encode(lines[(i + t) % lines.size()]) != expected[(i + t) % lines.size()];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

INSTANTIATE_TEST_SUITE_P(BothFormats, BundledTokenizer, ::testing::Values("tokenizer.model", "tokenizer.json"));

TEST(TokenizerLoad, DirectoryPrefersTokenizerJson) {
  EXPECT_FALSE(Tokenizer::load(kDir)->is_tiktoken());
  EXPECT_TRUE(Tokenizer::load(kDir + "/tokenizer.model")->is_tiktoken());
}

// A tiny rank file: all 256 bytes, then "ab" (256), "bc" (257), "abc" (258). tiktoken semantics merge the
// lowest-ranked adjacent pair first: "abc" -> a+b (256) -> ab+c = "abc" (258); "bcab" -> bc, ab.
TEST(TokenizerLoad, TinyRankFileMergesByRank) {
  const std::string path = ::testing::TempDir() + "/tiny.model";
  {
    std::ofstream out(path);
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int b = 0; b < 256; ++b) {
      const uint32_t n = static_cast<uint32_t>(b) << 16;
      out << alphabet[n >> 18] << alphabet[(n >> 12) & 63] << "== " << b << "\n";
    }
    out << "YWI= 256\nYmM= 257\nYWJj 258\n";
  }
  const auto tok = Tokenizer::load(path);
  EXPECT_EQ(tok->vocab_size(), 259 + 2048);
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{258}));
  EXPECT_EQ(tok->encode("abcab"), (std::vector<int32_t>{258, 256}));
  EXPECT_EQ(tok->encode("bcab"), (std::vector<int32_t>{257, 256}));
  EXPECT_EQ(tok->encode("xbc"), (std::vector<int32_t>{'x', 257}));
  EXPECT_EQ(tok->special_id("<|eot|>"), 259 + 8);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace l4::tokenizer
