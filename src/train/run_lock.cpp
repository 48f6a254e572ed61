#include "train/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace l4::train {
namespace {

constexpr const char* kLockName = ".llama4.lock";

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

// Creates `path` exclusively with `content`; false when it already exists.
bool create_exclusive(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    L4_CHECK(errno == EEXIST, "{}: cannot create the run lock: {}", path, std::strerror(errno));
    return false;
  }
  const ssize_t written = ::write(fd, content.data(), content.size());
  ::fsync(fd);
  ::close(fd);
  L4_CHECK(written == static_cast<ssize_t>(content.size()), "{}: cannot write the run lock", path);
  return true;
}

// A killed run's rank can linger as a zombie (its parent, mpirun, killed too): that is not a live holder.
bool process_runs(long pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');  // "pid (comm) S ...": the state follows the command name
  return paren == std::string::npos || paren + 2 >= text.size() ||
         (text[paren + 2] != 'Z' && text[paren + 2] != 'X');
}

}  // namespace

std::string lock_holder_text() {
  return fmt::format("{} {}\n", host_name(), static_cast<long>(::getpid()));
}

void RunLocks::acquire(const std::string& dir) {
  if (dir.empty()) return;
  fs::create_directories(dir);
  const std::string path = (fs::path(dir) / kLockName).string();
  if (std::find(files_.begin(), files_.end(), path) != files_.end()) return;
  content_ = lock_holder_text();
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (create_exclusive(path, content_)) {
      files_.push_back(path);
      return;
    }
    std::string host;
    long pid = 0;
    std::istringstream(file_exists(path) ? read_file(path) : "") >> host >> pid;
    if (host.empty() && pid == 0) continue;  // removed (or being written) meanwhile: try again
    const bool same_host = host == host_name();
    const bool alive = !same_host || pid <= 0 || process_runs(pid);
    L4_CHECK(
        !alive,
        "{}: the directory is in use by another training run (pid {} on host {}, lock file {}); wait for it "
        "to end or give this run its own logging.run_dir / checkpoint.dir (if that run is gone, remove the "
        "lock file)",
        dir, pid, host, path);
    L4_LOG_WARN("{}: taking over a stale run lock (pid {} on this host {} no longer runs)", path, pid, host);
    std::error_code ec;
    fs::remove(path, ec);
  }
  L4_FAIL("{}: cannot take the run lock (another run keeps replacing it)", path);
}

RunLocks::~RunLocks() {
  for (const std::string& path : files_) {
    try {
      if (file_exists(path) && read_file(path) == content_) fs::remove(path);
    } catch (...) {
      // exiting anyway: a leftover lock is stale and the next run takes it over
    }
  }
}

}  // namespace l4::train
