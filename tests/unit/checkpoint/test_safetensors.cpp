#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "checkpoint/safetensors.h"
#include "unit/checkpoint/test_util.h"

namespace l4::checkpoint {
namespace {

using testing::same_tensor;
using testing::TempDir;
using testing::throws_error_with;
using testing::write_raw;

std::vector<std::pair<std::string, at::Tensor>> every_dtype() {
  torch::manual_seed(7);
  const at::Tensor ints = at::arange(-6, 6, at::kLong).reshape({3, 4});
  std::vector<std::pair<std::string, at::Tensor>> t = {
      {"f64", at::randn({2, 3}, at::kDouble)},
      {"f32", at::randn({4, 5})},
      {"f16", at::randn({3, 2}).to(at::kHalf)},
      {"bf16", at::randn({5, 3}).to(at::kBFloat16)},
      {"i64", at::tensor({std::numeric_limits<int64_t>::min(), int64_t{0}, std::numeric_limits<int64_t>::max()})},
      {"i32", ints.to(at::kInt)},
      {"i16", ints.to(at::kShort)},
      {"i8", ints.to(at::kChar)},
      {"u8", at::arange(250, 256, at::kLong).to(at::kByte)},
      {"bool", at::tensor({1, 0, 1}).to(at::kBool)},
      {"u16", at::arange(0, 6, at::kLong).to(at::kUInt16)},
      {"u32", at::arange(0, 6, at::kLong).to(at::kUInt32)},
      {"u64", at::arange(0, 6, at::kLong).to(at::kUInt64)},
      {"f8e4m3", at::randn({2, 2}).to(at::kFloat8_e4m3fn)},
      {"f8e5m2", at::randn({2, 2}).to(at::kFloat8_e5m2)},
      {"scalar", at::scalar_tensor(3.5, at::kFloat)},
      {"empty", at::empty({0, 3}, at::kFloat)},
      {"nonfinite", at::tensor({std::nanf(""), INFINITY, -INFINITY, -0.0f})},
      {"transposed", at::arange(12, at::kFloat).reshape({3, 4}).t()},  // saved contiguous
  };
  return t;
}

TEST(SafetensorsTest, RoundTripsEveryDtypeExactly) {
  TempDir dir;
  const auto tensors = every_dtype();
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "ünïcode ok"}};
  save_safetensors(dir.file("a.safetensors"), tensors, metadata);
  auto file = SafetensorsFile::open(dir.file("a.safetensors"));
  EXPECT_EQ(file->metadata(), metadata);
  EXPECT_EQ(file->entries().size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file->contains(name));
    EXPECT_EQ(file->entry(name).dtype, dtype_of(tensor.scalar_type()));
    EXPECT_TRUE(same_tensor(file->load(name), tensor.contiguous()));
  }
  EXPECT_EQ(std::memcmp(file->data("f32"), tensors[1].second.data_ptr(), 4 * 5 * 4), 0);
  EXPECT_FALSE(file->contains("absent"));
  EXPECT_TRUE(throws_error_with([&] { file->load("absent"); }, {dir.file("a.safetensors"), "absent"}));
}

TEST(SafetensorsTest, WritesHfLayoutSortedAndAligned) {
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"), {{"zeta", at::ones({3}, at::kHalf)}, {"alpha", at::ones({1})}});
  const std::string bytes = testing::read_all(dir.file("a.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // data section 8-byte aligned, as safetensors writes it
  const std::string header = bytes.substr(8, n);
  EXPECT_LT(header.find("\"alpha\""), header.find("\"zeta\""));
  auto file = SafetensorsFile::open(dir.file("a.safetensors"));
  EXPECT_EQ(file->entry("alpha").begin, 0u);  // data in name order
  EXPECT_EQ(file->entry("zeta").begin, 4u);
  EXPECT_EQ(bytes.size(), 8 + n + 4 + 6);
}

TEST(SafetensorsTest, SaveRejectsDuplicateAndBadNames) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  EXPECT_TRUE(throws_error_with([&] { save_safetensors(path, {{"x", at::ones({1})}, {"x", at::ones({1})}}); },
                                {path, "'x'", "twice"}));
  EXPECT_TRUE(throws_error_with([&] { save_safetensors(path, {{"__metadata__", at::ones({1})}}); }, {path}));
  EXPECT_TRUE(throws_error_with([&] { save_safetensors(path, {{"c", at::ones({1}, at::kComplexFloat)}}); },
                                {path, "'c'"}));
  EXPECT_FALSE(testing::read_all(path).size());  // nothing written, no temporary left behind
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
}

TEST(SafetensorsTest, LoadMatrixRowsReadsRowsOfTheFlattenedMatrix) {
  TempDir dir;
  const at::Tensor experts = at::randn({6, 3, 4}).to(at::kBFloat16);
  save_safetensors(dir.file("a.safetensors"), {{"a", at::ones({5})}, {"experts", experts}});
  auto file = SafetensorsFile::open(dir.file("a.safetensors"));
  const at::Tensor matrix = experts.reshape({18, 4});
  EXPECT_TRUE(same_tensor(file->load_matrix_rows("experts", 4, 11), matrix.slice(0, 4, 11)));
  EXPECT_TRUE(same_tensor(file->load_matrix_rows("experts", 0, 18), matrix));
  EXPECT_EQ(file->load_matrix_rows("experts", 7, 7).sizes(), (at::IntArrayRef{0, 4}));
  EXPECT_TRUE(throws_error_with([&] { file->load_matrix_rows("experts", 10, 19); }, {"experts", "[10, 19)"}));
  EXPECT_TRUE(throws_error_with([&] { file->load_matrix_rows("a", 0, 1); }, {"'a'", "two dimensions"}));
}

TEST(SafetensorsTest, LoadRowsReturnsTheRequestedRows) {
  TempDir dir;
  const at::Tensor experts = at::randn({6, 3, 4}).to(at::kBFloat16);
  save_safetensors(dir.file("a.safetensors"), {{"a", at::ones({5})}, {"experts", experts}, {"s", at::ones({})}});
  auto file = SafetensorsFile::open(dir.file("a.safetensors"));
  EXPECT_TRUE(same_tensor(file->load_rows("experts", 2, 5), experts.slice(0, 2, 5)));
  EXPECT_TRUE(same_tensor(file->load_rows("experts", 0, 6), experts));
  EXPECT_EQ(file->load_rows("experts", 3, 3).sizes(), (at::IntArrayRef{0, 3, 4}));
  EXPECT_TRUE(same_tensor(file->load_rows("a", 4, 5), at::ones({1})));
  EXPECT_TRUE(throws_error_with([&] { file->load_rows("experts", 4, 7); }, {dir.file("a.safetensors"), "experts"}));
  EXPECT_TRUE(throws_error_with([&] { file->load_rows("experts", -1, 2); }, {"experts"}));
  EXPECT_TRUE(throws_error_with([&] { file->load_rows("experts", 3, 2); }, {"experts"}));
  EXPECT_TRUE(throws_error_with([&] { file->load_rows("s", 0, 1); }, {"'s'", "scalar"}));
}

int64_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

// Pages of `path` in the page cache (file pages stay there whoever touched them).
int64_t cached_bytes(const std::string& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> resident((size + page - 1) / page);
  EXPECT_EQ(::mincore(map, size, resident.data()), 0);
  ::munmap(map, size);
  int64_t count = 0;
  for (unsigned char r : resident) count += r & 1;
  return count * page;
}

// An expert tensor of 2 GiB (a sparse file: it costs no disk) of which two rows are read: neither the
// process's memory nor the page cache may grow by more than a small multiple of those rows.
TEST(SafetensorsTest, LoadRowsTouchesOnlyTheRequestedRows) {
  TempDir dir;
  const std::string path = dir.file("big.safetensors");
  const int64_t rows = 1024, row_elems = 1024 * 1024, row_bytes = row_elems * 2;
  const uint64_t data_bytes = static_cast<uint64_t>(rows * row_bytes);
  std::string header = fmt::format(R"({{"experts":{{"dtype":"BF16","shape":[{},1024,1024],"data_offsets":[0,{}]}}}})",
                                   rows, data_bytes);
  header.append((8 - header.size() % 8) % 8, ' ');
  write_raw(path, header, "");
  const uint64_t data_start = 8 + header.size();
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(data_start + data_bytes)), 0);
  const at::Tensor pattern = at::arange(2 * row_elems, at::kFloat).remainder(251).to(at::kBFloat16);
  {
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_EQ(::pwrite(fd, pattern.data_ptr(), pattern.nbytes(), static_cast<off_t>(data_start + 700 * row_bytes)),
              static_cast<ssize_t>(pattern.nbytes()));
    ASSERT_EQ(::fsync(fd), 0);
    ::close(fd);
  }
  {
    const int fd = ::open(path.c_str(), O_RDONLY);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // start with a cold cache
    ::close(fd);
  }

  auto file = SafetensorsFile::open(path);
  const int64_t rss_before = rss_bytes();
  const at::Tensor got = file->load_rows("experts", 700, 702);
  const int64_t rss_growth = rss_bytes() - rss_before;
  EXPECT_TRUE(same_tensor(got, pattern.reshape({2, 1024, 1024})));
  const int64_t cached = cached_bytes(path, data_start + data_bytes);
  std::cout << "read 4 MiB of a 2 GiB tensor: RSS grew " << rss_growth << " bytes, " << cached
            << " bytes of the file are in the page cache\n";
  const int64_t limit = 8 * row_bytes;  // 16 MiB (the rows and page rounding), vs 2 GiB for the whole tensor
  EXPECT_LT(rss_growth, limit);
  EXPECT_LT(cached, limit);
}

TEST(SafetensorsTest, FileShrinkingUnderTheMappingIsAnErrorNotACrash) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  save_safetensors(path, {{"a", at::ones({4})}, {"b", at::ones({4096})}});
  auto file = SafetensorsFile::open(path);
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  EXPECT_TRUE(throws_error_with([&] { file->load("b"); }, {path, "'b'", "shorter than when it was opened"}));
}

// ---- Malformed files: each rejected with an l4::Error naming the file (and tensor where there is one).

constexpr const char* kGood =
    R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";

class MalformedTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("bad.safetensors"); }
  ::testing::AssertionResult rejects(const std::string& header, const std::string& data,
                                     std::initializer_list<std::string> needles,
                                     std::optional<uint64_t> header_len = std::nullopt) {
    write_raw(path(), header, data, header_len);
    std::vector<std::string> all(needles);
    all.push_back(path());
    return throws_error_with([&] { SafetensorsFile::open(path()); }, all);
  }
  TempDir dir_;
  const std::string data_ = std::string(16, '\1');
};

TEST_F(MalformedTest, TheGoodFileOpens) {
  write_raw(path(), kGood, data_);
  EXPECT_EQ(SafetensorsFile::open(path())->entries().size(), 2u);
}

TEST_F(MalformedTest, TruncatedFiles) {
  write_raw(path(), kGood, data_);
  const std::string whole = testing::read_all(path());
  for (size_t cut : {size_t{0}, size_t{5}, size_t{30}, whole.size() - 16, whole.size() - 1}) {
    SCOPED_TRACE(cut);
    testing::write_all(path(), whole.substr(0, cut));
    EXPECT_TRUE(throws_error_with([&] { SafetensorsFile::open(path()); }, {path()}));
  }
  testing::write_all(path(), whole.substr(0, whole.size() - 1));
  EXPECT_TRUE(throws_error_with([&] { SafetensorsFile::open(path()); }, {path(), "'b'", "truncated"}));
}

TEST_F(MalformedTest, HeaderLengthBeyondFileOrAbsurd) {
  EXPECT_TRUE(rejects(kGood, data_, {"header length", "past the end"}, 1000));
  EXPECT_TRUE(rejects(kGood, data_, {"exceeds the limit"}, uint64_t{1} << 40));
  EXPECT_TRUE(rejects(kGood, data_, {"exceeds the limit"}, uint64_t{1} << 63));
}

TEST_F(MalformedTest, OffsetsOutOfRange) {
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[100,108]}})", data_, {"'a'", "past the end"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data_, {"'a'"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", data_,
                      {"'a'"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data_, {"'a'", "data_offsets"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", data_, {"'a'", "negative"}));
}

TEST_F(MalformedTest, WrongDtypeString) {
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})", data_, {"'a'", "F33"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"f32","shape":[4],"data_offsets":[0,16]}})", data_, {"'a'", "dtype"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":4,"shape":[4],"data_offsets":[0,16]}})", data_, {"'a'", "dtype"}));
}

TEST_F(MalformedTest, OverlapsGapsAndTrailingBytes) {
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                      data_, {"'a'", "'b'", "overlap"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                      data_, {"overlap"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                      data_, {"'b'", "unused"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data_, {"trailing"}));
}

TEST_F(MalformedTest, ShapeDoesNotMatchOffsets) {
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data_, {"'a'", "needs 12"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data_, {"'a'", "negative"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}})", data_, {"'a'", "integer"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})", data_, {"'a'", "shape"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", data_,
                      {"'a'", "overflow"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}})", data_,
                      {"'a'", "overflow"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","data_offsets":[0,16]}})", data_, {"'a'", "shape"}));
}

TEST_F(MalformedTest, BadJson) {
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32")", data_, {"not valid JSON"}));
  EXPECT_TRUE(rejects(R"([1,2])", data_, {"object"}));
  EXPECT_TRUE(rejects("{\"\xff\xfe\":1}", data_, {"not valid JSON"}));
  EXPECT_TRUE(rejects(std::string(200, '[') + std::string(200, ']'), data_, {"nests"}));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                      data_, {"'a'", "twice"}));
  EXPECT_TRUE(rejects(R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data_,
                      {"__metadata__", "'k'"}));
  EXPECT_TRUE(rejects(R"({"a":[]})", data_, {"'a'"}));
}

TEST_F(MalformedTest, NotAFile) {
  EXPECT_TRUE(throws_error_with([&] { SafetensorsFile::open(dir_.file("absent")); }, {dir_.file("absent")}));
  EXPECT_TRUE(throws_error_with([&] { SafetensorsFile::open(dir_.path()); }, {dir_.path(), "regular"}));
  ASSERT_EQ(::mkfifo(dir_.file("fifo").c_str(), 0600), 0);  // must not block waiting for a writer
  EXPECT_TRUE(throws_error_with([&] { SafetensorsFile::open(dir_.file("fifo")); }, {dir_.file("fifo"), "regular"}));
}

TEST_F(MalformedTest, AcceptsWhatTheReferenceAccepts) {
  // Unpadded header, trailing spaces, unknown extra fields, empty header object, zero-size tensors.
  write_raw(path(), R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"extra":{"x":[1]}}}   )", data_);
  EXPECT_EQ(SafetensorsFile::open(path())->entry("a").shape, (std::vector<int64_t>{4}));
  write_raw(path(), "{}", "");
  EXPECT_TRUE(SafetensorsFile::open(path())->entries().empty());
  write_raw(path(), R"({"z":{"dtype":"F32","shape":[0,5],"data_offsets":[16,16]},)"
                    R"("a":{"dtype":"BOOL","shape":[16],"data_offsets":[0,16]}})",
            std::string(16, '\7'));
  auto file = SafetensorsFile::open(path());
  EXPECT_EQ(file->load("z").sizes(), (at::IntArrayRef{0, 5}));
  EXPECT_TRUE(file->load("a").all().item<bool>());  // non-0/1 bool bytes read as true, not as garbage
}

}  // namespace
}  // namespace l4::checkpoint
