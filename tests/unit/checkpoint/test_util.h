// Helpers shared by the checkpoint tests: temporary directories, raw safetensors files, exact comparison.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace l4::checkpoint::testing {

// A fresh directory under the test temp dir (or /dev/shm when `in_memory` and it exists: for tests that
// rewrite files thousands of times), removed at destruction.
class TempDir {
 public:
  explicit TempDir(bool in_memory = false);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes an 8-byte little-endian `header_len` (default: the header's size), the header text, then `data`.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> header_len = std::nullopt);
std::string read_all(const std::string& path);
void write_all(const std::string& path, const std::string& bytes);

// Same dtype, same shape and the same bytes (NaN payloads and -0.0 included).
::testing::AssertionResult same_tensor(const at::Tensor& a, const at::Tensor& b);

// Runs `fn`, expects l4::Error whose message contains every one of `needles`.
template <typename Fn>
::testing::AssertionResult throws_error_with(Fn&& fn, const std::vector<std::string>& needles);

}  // namespace l4::checkpoint::testing

#include "core/error.h"

namespace l4::checkpoint::testing {

template <typename Fn>
::testing::AssertionResult throws_error_with(Fn&& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const l4::Error& e) {
    const std::string message = e.what();
    for (const std::string& needle : needles) {
      if (message.find(needle) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << needle << "': " << message;
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than l4::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace l4::checkpoint::testing
