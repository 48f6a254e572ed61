#include "checkpoint/fd_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/file_io.h"

namespace l4::checkpoint {

FdWriter::FdWriter(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0 && (errno == ENOSPC || errno == EDQUOT)) fail_write(path_, errno);
  L4_CHECK(fd_ >= 0, "{}: cannot create: {}", tmp_, std::strerror(errno));
}

FdWriter::~FdWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void FdWriter::write(const void* data, size_t size) {
  L4_ASSERT(fd_ >= 0, "write after commit");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_write(path_, n < 0 ? errno : ENOSPC);  // no progress: nothing more fits
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void FdWriter::commit() {
  L4_ASSERT(fd_ >= 0, "commit twice");
  // Delayed allocation and network file systems report a full disk at fsync or close, not at write.
  if (::fsync(fd_) != 0) fail_write(path_, errno);  // the destructor removes the temporary file
  const int closed = ::close(fd_) == 0 ? 0 : errno;
  fd_ = -1;
  if (closed != 0) {
    ::unlink(tmp_.c_str());
    fail_write(path_, closed);
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    L4_FAIL("{}: cannot finish writing: {}", path_, std::strerror(err));
  }
  // Make the rename itself durable.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace l4::checkpoint
