#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
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

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  L4_CHECK(fd >= 0, "{}: cannot create: {}", tmp, std::strerror(errno));
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      L4_FAIL("{}: write failed: {}", tmp, std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  L4_CHECK(synced, "{}: fsync failed: {}", tmp, std::strerror(errno));
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
