// CRC-32 must stay CRC-32/ISO-HDLC bit for bit: checkpoints written before the switch to zlib's kernels
// carry these values in their manifests.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "core/checksum.h"

namespace {

// The definition, one bit at a time: reflected polynomial 0xEDB88320, initial value and final xor all ones.
uint32_t crc32_bitwise(const uint8_t* data, size_t size, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(gen());
  return out;
}

TEST(Checksum, Crc32CheckValues) {
  const std::string check = "123456789";
  EXPECT_EQ(l4::crc32(check.data(), check.size()), 0xCBF43926u);  // the catalogue's check value
  EXPECT_EQ(l4::crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(l4::crc32(nullptr, 0), 0u);
  EXPECT_EQ(l4::crc32(nullptr, 0, 0x12345678u), 0x12345678u);
}

TEST(Checksum, Crc32EqualsTheDefinitionOnOddLengthsAndOffsets) {
  const std::vector<uint8_t> data = random_bytes(70001, 7);
  for (size_t offset : {0, 1, 3, 7}) {
    for (size_t length : {1, 2, 3, 15, 16, 17, 63, 255, 4097, 65537}) {
      EXPECT_EQ(l4::crc32(data.data() + offset, length), crc32_bitwise(data.data() + offset, length))
          << "offset " << offset << " length " << length;
    }
  }
}

TEST(Checksum, Crc32Chains) {
  const std::vector<uint8_t> data = random_bytes(100003, 11);
  const uint32_t whole = l4::crc32(data.data(), data.size());
  for (size_t split : {1, 4095, 50000, 100002}) {
    const uint32_t first = l4::crc32(data.data(), split);
    EXPECT_EQ(l4::crc32(data.data() + split, data.size() - split, first), whole) << "split " << split;
  }
  const uint32_t head = crc32_bitwise(data.data(), 333);
  EXPECT_EQ(l4::crc32(data.data() + 333, 1000, head), crc32_bitwise(data.data(), 1333));
}

// Python's zlib.crc32 as an outside reference on the same random buffers (seeded, odd lengths, chained).
TEST(Checksum, Crc32EqualsPythonZlib) {
  l4::testing::TempDir dir;
  const std::vector<size_t> lengths = {1, 5, 31, 1000, 65535, 1048577};
  std::vector<uint32_t> ours;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const auto data = random_bytes(lengths[i], 100 + static_cast<uint32_t>(i));
    std::ofstream(dir.path() + "/buf" + std::to_string(i), std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    ours.push_back(l4::crc32(data.data(), data.size()));
  }
  // The chain of every buffer in order, as one stream.
  uint32_t chained = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const auto data = random_bytes(lengths[i], 100 + static_cast<uint32_t>(i));
    chained = l4::crc32(data.data(), data.size(), chained);
  }
  const std::string script = dir.path() + "/crc.py";
  std::ofstream(script) << "import sys, zlib\n"
                           "c = 0\n"
                           "for i in range("
                        << lengths.size()
                        << "):\n"
                           "    b = open(sys.argv[1] + '/buf%d' % i, 'rb').read()\n"
                           "    print(zlib.crc32(b))\n"
                           "    c = zlib.crc32(b, c)\n"
                           "print(c)\n";
  const std::string command = std::string(L4_PYTHON) + " " + script + " " + dir.path();
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe)) out += buffer;
  ASSERT_EQ(pclose(pipe), 0) << command;
  std::istringstream lines(out);
  for (size_t i = 0; i < lengths.size(); ++i) {
    uint64_t expected = 0;
    ASSERT_TRUE(lines >> expected);
    EXPECT_EQ(ours[i], expected) << "length " << lengths[i];
  }
  uint64_t expected_chain = 0;
  ASSERT_TRUE(lines >> expected_chain);
  EXPECT_EQ(chained, expected_chain);
}

}  // namespace
