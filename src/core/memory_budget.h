// How much memory this machine offers a new process, and the refusal of a run that clearly needs more:
// a size that cannot fit must end in a user error naming the keys that drive it, before anything is
// allocated, instead of an out-of-memory kill (or a swap storm) minutes into the run.
#pragma once

#include <cstdint>
#include <string>

namespace l4 {

struct AvailableMemory {
  int64_t bytes = -1;  // < 0: unknown (nothing readable), the check is skipped
  std::string source;  // where the figure comes from, for the message ("MemAvailable in /proc/meminfo")
};

// The smallest of /proc/meminfo's MemAvailable, the cgroup's room (memory.max or memory.limit_in_bytes
// minus the usage, reclaimable page cache not counted as used) and L4_MEMORY_LIMIT_BYTES when set.
AvailableMemory available_host_memory();

// Parsers of the files above (exposed for tests): the value in bytes, or -1 when absent / unlimited.
int64_t parse_meminfo_available(const std::string& meminfo);
int64_t parse_cgroup_limit(const std::string& text);                                 // "max" or a byte count
int64_t parse_memory_stat_field(const std::string& stat, const std::string& field);  // "inactive_file 123"

// Env variable that skips every memory check (for commands without a recipe key): L4_SKIP_MEMORY_CHECK=1.
bool memory_check_skipped_by_env();

// Throws l4::Error when `needed` exceeds `available.bytes` (a known figure): "<what> needs about X GiB
// (N bytes) but this machine offers Y GiB (M bytes, <source>); the size is driven by <drivers>; <hint>".
void require_memory(int64_t needed, const AvailableMemory& available, const std::string& what,
                    const std::string& drivers, const std::string& override_hint);

// "1.23 GiB (1321205760 bytes)"
std::string format_bytes(int64_t bytes);

}  // namespace l4
