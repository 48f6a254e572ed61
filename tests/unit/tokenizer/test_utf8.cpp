// UTF-8 helpers, base64, SHA-256 and the regex rewrite, against published reference values.
#include <gtest/gtest.h>

#include "tokenizer/base64.h"
#include "tokenizer/sha256.h"
#include "tokenizer/split_regex.h"
#include "tokenizer/utf8.h"

namespace l4::tokenizer {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, LossyFollowsUnicodeMaximalSubpartPractice) {
  // The Unicode Standard, section 3.9, table 3-8 example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d");
  // Overlong, surrogate and out-of-range forms: one replacement per byte (no valid second byte).
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), kFffd + kFffd);
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8_lossy("caf\xC3"), "caf" + kFffd);
  EXPECT_EQ(utf8_lossy("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\xA6\x99 llama"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\xA6"));
}

TEST(Utf8, PythonIsspaceSet) {
  // Every code point for which CPython's str.isspace() is true.
  const std::vector<char32_t> spaces = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
                                        0x1680, 0x2000, 0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  for (char32_t cp : spaces) EXPECT_TRUE(python_isspace(cp)) << std::hex << cp;
  for (char32_t cp : {0x08, 0x21, 0x180E, 0x200B, 0x2060, 0xFEFF, 0x61}) EXPECT_FALSE(python_isspace(cp)) << std::hex << cp;
  EXPECT_EQ(python_strip("\xE3\x80\x80 \t hi there \n\xC2\x85"), "hi there");
  EXPECT_EQ(python_strip("   "), "");
}

TEST(Utf8, MetaSlicesBoundRuns) {
  const std::string letters(60, 'a');
  std::vector<size_t> sizes;
  for (auto s : meta_slices(letters, 400000, 25)) sizes.push_back(s.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{25, 25, 10}));
  // Alternating runs under the limit are never cut; the 30-space run is.
  const std::string mixed = std::string(20, 'x') + std::string(30, ' ') + "y";
  sizes.clear();
  for (auto s : meta_slices(mixed, 400000, 25)) sizes.push_back(s.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{45, 6}));
  // Chunks count code points, not bytes: 5 two-byte characters per chunk.
  std::string accents;
  for (int i = 0; i < 12; ++i) accents += "\xC3\xA9";
  sizes.clear();
  for (auto s : meta_slices(accents, 5, 25000)) sizes.push_back(s.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{10, 10, 4}));
  EXPECT_TRUE(meta_slices("").empty());
}

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}, {"Zm9vYmFy", "foobar"}};
  for (const auto& [in, out] : vectors) EXPECT_EQ(base64_decode(in).value_or("<bad>"), out) << in;
  for (const char* bad : {"Zg=", "Z!==", "Zm9", "=Zm9", "Zm9v\n", "Zg=a"}) EXPECT_FALSE(base64_decode(bad)) << bad;
}

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(SplitRegex, WhitespaceClassesAreRewritten) {
  const std::string out = rewrite_whitespace_classes("\\s+(?!\\S)|[^\\s\\p{L}]+|\\\\s|[]\\s]");
  EXPECT_EQ(out.find("\\s"), out.find("\\\\s") + 1);  // only the escaped backslash + 's' literal stays
  EXPECT_NE(out.find("[^\\t\\n"), std::string::npos);
  EXPECT_NE(out.find("[^\\t\\n\\x{0B}"), std::string::npos);
  // Pieces of a string with U+180E (not White_Space) next to punctuation stay one piece.
  SplitRegex re("\\s+|[^\\s]+", false, "test");
  std::vector<std::pair<uint32_t, uint32_t>> pieces;
  re.split("!!\xE1\xA0\x8E!! x", pieces);
  EXPECT_EQ(pieces, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 7}, {7, 8}, {8, 9}}));
}

}  // namespace
}  // namespace l4::tokenizer
