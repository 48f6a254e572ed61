#include "unit/checkpoint/test_util.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace l4::checkpoint::testing {

TempDir::TempDir(bool in_memory) {
  const bool shm = in_memory && ::access("/dev/shm", W_OK) == 0;
  std::string pattern = (shm ? std::string("/dev/shm/") : ::testing::TempDir()) + "l4_ckpt_XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  if (made == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_raw(const std::string& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> header_len) {
  const uint64_t len = header_len.value_or(header.size());
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &len, 8);
  write_all(path, bytes + header + data);
}

::testing::AssertionResult same_tensor(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type())
    return ::testing::AssertionFailure() << "dtype " << a.scalar_type() << " vs " << b.scalar_type();
  if (a.sizes() != b.sizes()) return ::testing::AssertionFailure() << "shape " << a.sizes() << " vs " << b.sizes();
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  if (ca.nbytes() != cb.nbytes() || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) != 0)
    return ::testing::AssertionFailure() << "bytes differ";
  return ::testing::AssertionSuccess();
}

}  // namespace l4::checkpoint::testing
