#include "core/memory_budget.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"

namespace l4 {
namespace {

// The cgroup (v2 "0::/path", v1 "N:...memory...:/path") this process belongs to; "" when unknown.
std::string cgroup_path(const std::string& controller_v1) {
  std::istringstream lines(read_file_or_empty("/proc/self/cgroup"));
  std::string line;
  while (std::getline(lines, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controller_v1.empty() ? controllers.empty() : controllers.find(controller_v1) != std::string::npos)
      return path == "/" ? "" : path;
  }
  return "";
}

struct CgroupRoom {
  int64_t bytes = -1;
  std::string source;
};

// Limit minus usage of the first cgroup directory (the process's own, then the namespace root) that has a
// limit; page cache the kernel reclaims under pressure (inactive_file) is not counted as used.
CgroupRoom cgroup_room() {
  struct Layout {
    std::string root, controller, limit, usage, stat_field;
  };
  const std::vector<Layout> layouts = {
      {"/sys/fs/cgroup", "", "memory.max", "memory.current", "inactive_file"},
      {"/sys/fs/cgroup/memory", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
       "total_inactive_file"}};
  for (const Layout& layout : layouts) {
    for (const std::string& dir : {layout.root + cgroup_path(layout.controller), layout.root}) {
      const int64_t limit = parse_cgroup_limit(read_file_or_empty(dir + "/" + layout.limit));
      if (limit < 0) continue;
      const int64_t usage = parse_cgroup_limit(read_file_or_empty(dir + "/" + layout.usage));
      const int64_t reclaimable =
          parse_memory_stat_field(read_file_or_empty(dir + "/memory.stat"), layout.stat_field);
      const int64_t used = std::max<int64_t>(0, usage) - std::max<int64_t>(0, reclaimable);
      return {std::max<int64_t>(0, limit - std::max<int64_t>(0, used)),
              "cgroup " + dir + "/" + layout.limit + " minus usage"};
    }
  }
  return {};
}

}  // namespace

int64_t parse_meminfo_available(const std::string& meminfo) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    long long kib = -1;
    std::string unit;
    fields >> kib >> unit;
    if (kib < 0) return -1;
    return static_cast<int64_t>(kib) * (unit == "kB" ? 1024 : 1);
  }
  return -1;
}

int64_t parse_cgroup_limit(const std::string& text) {
  std::istringstream in(text);
  std::string word;
  if (!(in >> word) || word == "max") return -1;
  char* end = nullptr;
  const long long value = std::strtoll(word.c_str(), &end, 10);
  if (end == word.c_str() || *end != '\0' || value < 0) return -1;
  // cgroup v1 writes "no limit" as the largest page-aligned int64 (9223372036854771712).
  if (value >= (int64_t{1} << 62)) return -1;
  return static_cast<int64_t>(value);
}

int64_t parse_memory_stat_field(const std::string& stat, const std::string& field) {
  std::istringstream lines(stat);
  std::string name;
  long long value = 0;
  while (lines >> name >> value) {
    if (name == field) return static_cast<int64_t>(value);
  }
  return -1;
}

AvailableMemory available_host_memory() {
  AvailableMemory out;
  const int64_t meminfo = parse_meminfo_available(read_file_or_empty("/proc/meminfo"));
  if (meminfo >= 0) out = {meminfo, "MemAvailable in /proc/meminfo"};
  const CgroupRoom cgroup = cgroup_room();
  if (cgroup.bytes >= 0 && (out.bytes < 0 || cgroup.bytes < out.bytes)) out = {cgroup.bytes, cgroup.source};
  // A budget below what the machine offers (a shared machine, or a smaller target machine).
  if (const char* limit = std::getenv("L4_MEMORY_LIMIT_BYTES")) {
    char* end = nullptr;
    const long long bytes = std::strtoll(limit, &end, 10);
    L4_CHECK(end != limit && *end == '\0' && bytes > 0,
             "L4_MEMORY_LIMIT_BYTES must be a positive number of bytes, got '{}'", limit);
    if (out.bytes < 0 || bytes < out.bytes) out = {bytes, "L4_MEMORY_LIMIT_BYTES"};
  }
  return out;
}

bool memory_check_skipped_by_env() {
  const char* value = std::getenv("L4_SKIP_MEMORY_CHECK");
  return value != nullptr && std::string(value) != "" && std::string(value) != "0";
}

std::string format_bytes(int64_t bytes) {
  return fmt::format("{:.2f} GiB ({} bytes)", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0), bytes);
}

void require_memory(int64_t needed, const AvailableMemory& available, const std::string& what,
                    const std::string& drivers, const std::string& override_hint) {
  if (available.bytes < 0 || needed <= available.bytes) return;
  L4_FAIL(
      "{} needs about {} of memory but this machine offers {} ({}); the size is driven by {}. Make it "
      "smaller, or {}",
      what, format_bytes(needed), format_bytes(available.bytes), available.source, drivers, override_hint);
}

}  // namespace l4
