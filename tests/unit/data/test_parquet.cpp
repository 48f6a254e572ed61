// The Parquet reader's parts on hand-made bytes (Thrift compact protocol, Snappy, hostile files) and the
// whole reader on small files written by pyarrow (fixtures/make_parquet_fixtures.py): each row must equal
// the JSON record the file was written from.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "data/parquet_codecs.h"
#include "data/parquet_reader.h"
#include "data/thrift_compact.h"
#include "prepare_test_encoder.h"
#include "synthetic_dataset.h"

namespace l4::data {
namespace {

using testing::error_of;
using testing::fresh_dir;
using testing::write_file;

const std::string kFixtures = std::string(L4_SOURCE_DIR) + "/tests/unit/data/fixtures";

std::vector<uint8_t> bytes(std::initializer_list<int> values) {
  std::vector<uint8_t> out;
  for (int v : values) out.push_back(static_cast<uint8_t>(v));
  return out;
}

TEST(Parquet, ThriftCompactStructsListsAndSkipping) {
  // struct { 1: i32 = -3, 2: binary "ab", 4: list<i64> [1, 300], 5: struct { 1: bool true }, 7: double }
  const std::vector<uint8_t> data =
      bytes({0x15, 0x05, 0x18, 0x02, 'a', 'b', 0x29, 0x26, 0x02, 0xD8, 0x04, 0x1C,
             0x11, 0x00, 0x27, 0,    0,   0,   0,    0,    0,    0xF0, 0x3F, 0x00});
  ThriftReader t(data.data(), data.size(), "test");
  t.begin_struct();
  int16_t id;
  uint8_t type;
  ASSERT_TRUE(t.next_field(&id, &type));
  EXPECT_EQ(id, 1);
  EXPECT_EQ(t.read_int(type), -3);
  ASSERT_TRUE(t.next_field(&id, &type));
  EXPECT_EQ(t.read_binary(), "ab");
  ASSERT_TRUE(t.next_field(&id, &type));
  EXPECT_EQ(id, 4);
  const ThriftReader::ListHeader h = t.read_list_header();
  ASSERT_EQ(h.size, 2u);
  EXPECT_EQ(t.read_int(h.element_type), 1);
  EXPECT_EQ(t.read_int(h.element_type), 300);
  ASSERT_TRUE(t.next_field(&id, &type));
  EXPECT_EQ(id, 5);
  t.skip(type);
  ASSERT_TRUE(t.next_field(&id, &type));
  EXPECT_EQ(id, 7);
  EXPECT_EQ(t.read_double(), 1.0);
  EXPECT_FALSE(t.next_field(&id, &type));
  t.end_struct();
  EXPECT_EQ(t.position(), data.size());
}

TEST(Parquet, ThriftCompactRejectsTruncatedAndHostileInput) {
  const std::vector<uint8_t> string_past_end = bytes({0x18, 0x7F, 'a'});
  ThriftReader a(string_past_end.data(), string_past_end.size(), "f.parquet: footer");
  int16_t id;
  uint8_t type;
  a.begin_struct();
  ASSERT_TRUE(a.next_field(&id, &type));
  EXPECT_NE(
      error_of([&] { a.read_binary(); }).find("f.parquet: footer: string of 127 bytes runs past the end"),
      std::string::npos);
  const std::vector<uint8_t> huge_list = bytes({0xF9, 0xFF, 0xFF, 0xFF, 0x0F});
  ThriftReader b(huge_list.data(), huge_list.size(), "x");
  EXPECT_NE(error_of([&] { b.read_list_header(); }).find("runs past the end"), std::string::npos);
  std::vector<uint8_t> deep(200, 0x1C);  // struct inside struct inside ...
  ThriftReader c(deep.data(), deep.size(), "x");
  EXPECT_NE(error_of([&] { c.skip(ThriftReader::kStruct); }).find("nested too deeply"), std::string::npos);
  const std::vector<uint8_t> cut = bytes({0x15});
  ThriftReader d(cut.data(), cut.size(), "x");
  d.begin_struct();
  ASSERT_TRUE(d.next_field(&id, &type));
  EXPECT_NE(error_of([&] { d.read_int(type); }).find("truncated"), std::string::npos);
}

TEST(Parquet, SnappyLiteralsAndOverlappingCopies) {
  // "abcabcabcX": literal "abc", copy offset 3 length 6 (1-byte offset form), literal "X".
  const std::vector<uint8_t> data = bytes({10, 0x08, 'a', 'b', 'c', 0x09, 0x03, 0x00, 'X'});
  const std::vector<uint8_t> out = snappy_decompress(data.data(), data.size(), 10, "p");
  EXPECT_EQ(std::string(out.begin(), out.end()), "abcabcabcX");
  const std::vector<uint8_t> bad_offset = bytes({10, 0x08, 'a', 'b', 'c', 0x09, 0x09, 0x00, 'X'});
  EXPECT_NE(error_of([&] {
              snappy_decompress(bad_offset.data(), bad_offset.size(), 10, "p");
            }).find("copy offset 9 outside the 3 bytes written"),
            std::string::npos);
  EXPECT_NE(error_of([&] { snappy_decompress(data.data(), data.size(), 11, "p"); }).find("holds 10 bytes"),
            std::string::npos);
  const std::vector<uint8_t> long_literal = bytes({5, 0xF0, 0x40, 'a'});  // 65 literal bytes claimed
  EXPECT_NE(error_of([&] {
              snappy_decompress(long_literal.data(), long_literal.size(), 5, "p");
            }).find("truncated"),
            std::string::npos);
}

TEST(Parquet, FilesThatAreNotParquetAreNamed) {
  const std::string dir = fresh_dir("parquet_bad");
  const std::string short_file = write_file(dir + "/short.parquet", "PAR1");
  EXPECT_NE(
      error_of([&] { ParquetReader r(short_file); }).find("short.parquet: not a Parquet file (too short)"),
      std::string::npos);
  const std::string csv = write_file(dir + "/data.parquet", "a,b\n1,2\n3,4\n5,6\n");
  EXPECT_NE(error_of([&] { ParquetReader r(csv); }).find("data.parquet: not a Parquet file (no PAR1 magic"),
            std::string::npos);
  std::string footer_too_long = "PAR1xxxx";
  footer_too_long += std::string("\xff\xff\x00\x00", 4) + "PAR1";
  const std::string f1 = write_file(dir + "/f1.parquet", footer_too_long);
  EXPECT_NE(error_of([&] { ParquetReader r(f1); }).find("footer length 65535 exceeds the file"),
            std::string::npos);
  std::string garbage_footer = "PAR1";
  garbage_footer += std::string("\x19\x7c\x00\x00\x00\x00", 6);
  garbage_footer += std::string("\x06\x00\x00\x00", 4) + "PAR1";
  const std::string f2 = write_file(dir + "/f2.parquet", garbage_footer);
  const std::string err = error_of([&] { ParquetReader r(f2); });
  EXPECT_NE(err.find("f2.parquet: footer: "), std::string::npos) << err;
}

std::vector<nlohmann::json> rows_of(const std::string& path, std::vector<std::string> columns = {}) {
  ParquetReader reader(path, std::move(columns));
  std::vector<nlohmann::json> rows;
  reader.for_each_row([&](int64_t row, const nlohmann::json& object) {
    EXPECT_EQ(row, static_cast<int64_t>(rows.size()));
    rows.push_back(object);
  });
  EXPECT_EQ(static_cast<int64_t>(rows.size()), reader.num_rows());
  return rows;
}

std::vector<nlohmann::json> expected_rows(const std::string& name) {
  std::ifstream in(kFixtures + "/" + name + ".expected.jsonl");
  EXPECT_TRUE(in.good()) << name;
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// Every fixture: nested lists of structs, nulls, empty lists, dictionary and plain pages, data pages v1 and
// v2, several row groups, and each codec the build reads.
TEST(Parquet, RowsEqualTheRecordsPyarrowWrote) {
  std::ifstream list(kFixtures + "/fixtures.txt");
  ASSERT_TRUE(list.good()) << "tests/unit/data/fixtures/fixtures.txt missing";
  int checked = 0;
  for (std::string name; std::getline(list, name);) {
    if (name.empty()) continue;
    const std::string path = kFixtures + "/" + name + ".parquet";
    if (name.find("zstd") != std::string::npos && !parquet_codec_supported(kZstd)) {
      EXPECT_NE(error_of([&] { rows_of(path); }).find("ZSTD compression is not supported by this build"),
                std::string::npos);
      continue;
    }
    const std::vector<nlohmann::json> rows = rows_of(path);
    const std::vector<nlohmann::json> expected = expected_rows(name);
    ASSERT_EQ(rows.size(), expected.size()) << name;
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i], expected[i]) << name << " row " << i;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(Parquet, OnlyTheRequestedColumnsAreRead) {
  const std::vector<nlohmann::json> rows =
      rows_of(kFixtures + "/alpaca_gzip_v1.parquet", {"output", "absent"});
  ASSERT_FALSE(rows.empty());
  for (const auto& row : rows) {
    EXPECT_EQ(row.size(), 1u) << row.dump();
    EXPECT_TRUE(row.contains("output"));
  }
}

// Corrupted copies of the fixtures (random bytes changed, the file cut short) either read or fail with an
// l4::Error naming the file: never another exception, a crash or a hang (sanitizer builds check the rest).
TEST(Parquet, CorruptedFilesFailCleanly) {
  const std::string dir = fresh_dir("parquet_fuzz");
  std::mt19937 rng(11);
  std::ifstream list(kFixtures + "/fixtures.txt");
  int failures = 0, reads = 0;
  for (std::string name; std::getline(list, name);) {
    if (name.empty()) continue;
    std::ifstream in(kFixtures + "/" + name + ".parquet", std::ios::binary);
    const std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (int trial = 0; trial < 150; ++trial) {
      std::string bytes = original;
      if (trial % 5 == 4) {
        bytes.resize(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng));
      } else {
        for (int k = 0; k <= trial % 4; ++k) {
          bytes[std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng)] =
              static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
        }
      }
      const std::string path = write_file(dir + "/corrupt.parquet", bytes);
      try {
        ParquetReader reader(path);
        reader.for_each_row([](int64_t, const nlohmann::json& row) {
          (void)row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        });
        ++reads;
      } catch (const l4::Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        ++failures;
      } catch (const std::exception& e) {
        ADD_FAILURE() << name << " trial " << trial << ": " << e.what();
      }
    }
  }
  EXPECT_GT(failures, 100);
  EXPECT_GT(reads, 0);  // some changes land in values (a different letter) and still read
}

}  // namespace
}  // namespace l4::data
