#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace l4 {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  L4_CHECK(in.good(), "{}: cannot read: {}", path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  L4_CHECK(!in.bad(), "{}: read error", path);
  return buffer.str();
}

std::string read_file_or_empty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return "";
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return in.bad() ? "" : buffer.str();
}

namespace {

// True when the file system holding `path` (the file, else its directory) has less than 64 KiB free.
bool no_space_left(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  for (const std::string& candidate : {path, dir}) {
    struct statvfs fs {};
    if (::statvfs(candidate.c_str(), &fs) == 0) return fs.f_bavail * fs.f_frsize < 64 * 1024;
  }
  return false;
}

}  // namespace

std::string write_error(const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT || no_space_left(path))
    return fmt::format(
        "disk full (no space left on device) writing {}: free some space (or write elsewhere) "
        "and run again",
        path);
  if (err == EFBIG)
    return fmt::format(
        "file size limit exceeded (EFBIG: the file is larger than 'ulimit -f' allows) writing {}", path);
  return fmt::format("{}: write failed: {}", path, err != 0 ? std::strerror(err) : "unknown error");
}

void fail_write(const std::string& path, int err) {
  throw Error(write_error(path, err));
}

bool out_of_space(const std::string& path, int err) {
  return err == ENOSPC || err == EDQUOT || err == EFBIG || no_space_left(path);
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 && (errno == ENOSPC || errno == EDQUOT)) fail_write(path, errno);
  L4_CHECK(fd >= 0, "{}: cannot create: {}", tmp, std::strerror(errno));
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;  // no progress: nothing more fits
      ::close(fd);
      ::unlink(tmp.c_str());
      fail_write(path, err);
    }
    written += static_cast<size_t>(n);
  }
  // Delayed allocation and network file systems report a full disk at fsync or close, not at write.
  const int synced = ::fsync(fd) == 0 ? 0 : errno;
  const int closed = ::close(fd) == 0 ? 0 : errno;
  if (synced != 0 || closed != 0) {
    ::unlink(tmp.c_str());
    fail_write(path, synced != 0 ? synced : closed);
  }
  L4_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "{}: rename failed: {}", path, std::strerror(errno));
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace l4
