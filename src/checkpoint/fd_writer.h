// Streams bytes into "<path>.tmp.<pid>" and, on commit(), fsyncs and renames it over `path`, so readers
// never see half a file (checkpoints are too large to build in memory first, unlike l4::write_file_atomic).
#pragma once

#include <cstddef>
#include <string>

namespace l4::checkpoint {

class FdWriter {
 public:
  explicit FdWriter(const std::string& path);
  ~FdWriter();  // removes the temporary file unless committed
  FdWriter(const FdWriter&) = delete;
  FdWriter& operator=(const FdWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

}  // namespace l4::checkpoint
