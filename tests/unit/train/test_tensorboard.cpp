#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/temp_dir.h"
#include "core/checksum.h"
#include "train/metrics_log.h"
#include "train/tensorboard_writer.h"

namespace l4::train {
namespace {

TEST(ChecksumTest, StandardCheckValues) {
  // The published check values of both polynomials over "123456789".
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  // Incremental use equals one pass.
  EXPECT_EQ(crc32("6789", 4, crc32("12345", 5)), 0xCBF43926u);
}

TEST(TensorBoardWriterTest, RecordsAreFramedWithValidCrcs) {
  l4::testing::TempDir dir;
  std::string path;
  {
    TensorBoardWriter writer(dir.path());
    writer.add_scalar("loss", 2.5, 3, 1.0e9);
    path = writer.path();
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string bytes = buffer.str();
  size_t pos = 0;
  int records = 0;
  auto masked = [](const char* p, size_t n) {
    const uint32_t c = crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
  };
  while (pos < bytes.size()) {
    ASSERT_LE(pos + 12, bytes.size());
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + pos, 8);
    std::memcpy(&length_crc, bytes.data() + pos + 8, 4);
    EXPECT_EQ(length_crc, masked(bytes.data() + pos, 8));
    ASSERT_LE(pos + 12 + length + 4, bytes.size());
    std::memcpy(&data_crc, bytes.data() + pos + 12 + length, 4);
    EXPECT_EQ(data_crc, masked(bytes.data() + pos + 12, length));
    pos += 12 + length + 4;
    ++records;
  }
  EXPECT_EQ(records, 2);  // file version + one scalar
  EXPECT_NE(bytes.find("brain.Event:2"), std::string::npos);
}

TEST(MetricsLogTest, OneJsonObjectPerStepAndNonFiniteAsNull) {
  l4::testing::TempDir dir;
  {
    MetricsLog log(dir.path(), /*tensorboard=*/false);
    log.log(1, {{"loss", 2.0}, {"lr", 1e-3}});
    log.log(2, {{"loss", std::nan("")}});
  }
  std::ifstream in(dir.file("metrics.jsonl"));
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  EXPECT_EQ(first, R"({"step":1,"loss":2.0,"lr":0.001})");
  EXPECT_EQ(second, R"({"step":2,"loss":null})");
}

}  // namespace
}  // namespace l4::train
