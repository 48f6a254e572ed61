// Mutates a valid safetensors file thousands of times (fixed seed): opening and reading every tensor of
// each mutant must either work or throw l4::Error; never crash, hang, or throw anything else.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <iostream>
#include <random>

#include "checkpoint/safetensors.h"
#include "unit/checkpoint/test_util.h"

namespace l4::checkpoint {
namespace {

using testing::TempDir;

enum class Outcome { kOpened, kRejected };

// Opens the file and reads everything; returns how it ended or fails the test on any other exception.
Outcome exercise(const std::string& path, std::mt19937& rng) {
  try {
    auto file = SafetensorsFile::open(path);
    uint64_t covered = 0;
    for (const TensorEntry& e : file->entries()) {
      EXPECT_EQ(e.begin, covered) << e.name;  // an accepted file is tiled exactly
      covered = e.end;
      const at::Tensor t = file->load(e.name);
      EXPECT_EQ(static_cast<uint64_t>(t.nbytes()), e.nbytes()) << e.name;
      if (!e.shape.empty() && e.shape[0] > 0) {
        const int64_t b = std::uniform_int_distribution<int64_t>(0, e.shape[0])(rng);
        const int64_t en = std::uniform_int_distribution<int64_t>(b, e.shape[0])(rng);
        EXPECT_EQ(file->load_rows(e.name, b, en).size(0), en - b);
      }
    }
    return Outcome::kOpened;
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    return Outcome::kRejected;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return Outcome::kRejected;
  }
}

std::string valid_file_bytes(const TempDir& dir) {
  torch::manual_seed(3);
  save_safetensors(dir.file("seed.safetensors"),
                   {{"model.embed.weight", at::randn({4, 3}).to(at::kBFloat16)},
                    {"experts.gate_up_proj", at::randn({2, 3, 2})},
                    {"ids", at::arange(5, at::kLong)},
                    {"mask", at::tensor({1, 0}).to(at::kBool)},
                    {"half", at::randn({3}).to(at::kHalf)},
                    {"empty", at::empty({0}, at::kInt)}},
                   {{"format", "pt"}});
  return testing::read_all(dir.file("seed.safetensors"));
}

TEST(SafetensorsFuzzTest, ByteLevelMutationsNeverCrash) {
  TempDir dir(/*in_memory=*/true);
  const std::string seed = valid_file_bytes(dir);
  uint64_t header_len = 0;
  std::memcpy(&header_len, seed.data(), 8);
  std::mt19937 rng(20240611);
  const std::string path = dir.file("mutant.safetensors");
  int opened = 0, rejected = 0;
  const char* alphabet = "0123456789[]{},:\"-. eEFIUB";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && bytes.size() > 9; ++k) {
      const size_t header_end = std::min<uint64_t>(8 + header_len, bytes.size());
      switch (rng() % 7) {
        case 0:  // random byte anywhere
          bytes[rng() % bytes.size()] = static_cast<char>(rng());
          break;
        case 1:  // JSON-ish byte inside the header (digits, brackets, quotes keep it near-valid)
          bytes[8 + rng() % (header_end - 8)] = alphabet[rng() % std::strlen(alphabet)];
          break;
        case 2:  // truncate
          bytes.resize(rng() % bytes.size());
          break;
        case 3:  // append junk
          bytes.append(1 + rng() % 16, static_cast<char>(rng()));
          break;
        case 4: {  // rewrite the header length: nearby, random, or huge
          uint64_t n = header_len;
          const uint32_t how = rng() % 3;
          n = how == 0 ? n + (rng() % 17) - 8 : how == 1 ? rng() : (uint64_t{rng()} << 32) | rng();
          std::memcpy(bytes.data(), &n, 8);
          break;
        }
        case 5:  // delete a header byte (shifts the JSON)
          bytes.erase(8 + rng() % (header_end - 8), 1);
          break;
        case 6:  // bump a digit of an offset or shape up or down by one
        {
          const size_t at = 8 + rng() % (header_end - 8);
          if (std::isdigit(static_cast<unsigned char>(bytes[at])))
            bytes[at] = static_cast<char>('0' + (bytes[at] - '0' + (rng() % 2 ? 1 : 9)) % 10);
          break;
        }
      }
    }
    testing::write_all(path, bytes);
    (exercise(path, rng) == Outcome::kOpened ? opened : rejected)++;
    if (::testing::Test::HasFailure()) {
      FAIL() << "iteration " << iter;
    }
  }
  std::cout << "byte mutants: " << opened << " opened, " << rejected << " rejected\n";
  // Both outcomes must occur, or the mutations are not exercising the parser.
  EXPECT_GT(opened, 50);
  EXPECT_GT(rejected, 1000);
}

// Structure-aware: valid JSON whose tensor records take random, often hostile, values.
TEST(SafetensorsFuzzTest, HeaderFieldMutationsNeverCrash) {
  TempDir dir(/*in_memory=*/true);
  const std::string seed = valid_file_bytes(dir);
  uint64_t header_len = 0;
  std::memcpy(&header_len, seed.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(seed.substr(8, header_len));
  const std::string data = seed.substr(8 + header_len);
  std::mt19937 rng(77);
  const std::string path = dir.file("mutant.safetensors");
  const std::vector<nlohmann::json> hostile_numbers = {
      0, 1, 2, 7, 8, -1, -8, 0.5, "3", nullptr, true, 4294967296ull, 9223372036854775807ll,
      18446744073709551615ull, 1e30};
  const std::vector<nlohmann::json> dtypes = {"F32", "BF16", "I64", "BOOL", "F8_E4M3", "U64", "X", "", 3};
  int opened = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    nlohmann::json h = header;
    std::vector<std::string> names;
    for (const auto& [k, v] : h.items()) names.push_back(k);
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      nlohmann::json& t = h[names[rng() % names.size()]];
      if (!t.is_object() || !t.contains("shape")) {
        t = hostile_numbers[rng() % hostile_numbers.size()];
        continue;
      }
      switch (rng() % 6) {
        case 0:
          t["dtype"] = dtypes[rng() % dtypes.size()];
          break;
        case 1:
          if (!t["shape"].empty()) t["shape"][rng() % t["shape"].size()] = hostile_numbers[rng() % hostile_numbers.size()];
          break;
        case 2:
          t["shape"].push_back(hostile_numbers[rng() % hostile_numbers.size()]);
          break;
        case 3:
          t["data_offsets"][rng() % 2] = hostile_numbers[rng() % hostile_numbers.size()];
          break;
        case 4: {  // plausible shift of both offsets (overlaps and gaps)
          const int64_t shift = static_cast<int64_t>(rng() % 9) - 4;
          for (auto& o : t["data_offsets"])
            if (o.is_number_integer()) o = std::max<int64_t>(0, o.get<int64_t>() + shift);
          break;
        }
        case 5:
          t.erase(rng() % 2 ? "shape" : "data_offsets");
          break;
      }
    }
    testing::write_raw(path, h.dump(), data);
    (exercise(path, rng) == Outcome::kOpened ? opened : rejected)++;
    if (::testing::Test::HasFailure()) {
      FAIL() << "iteration " << iter << ": " << h.dump();
    }
  }
  std::cout << "header-field mutants: " << opened << " opened, " << rejected << " rejected\n";
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(opened, 20);
}

}  // namespace
}  // namespace l4::checkpoint
