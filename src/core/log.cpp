#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/error.h"

namespace l4::log {
namespace {

std::atomic<int> g_rank{0};
std::atomic<int> g_world{1};
std::atomic<bool> g_all_ranks{false};
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_write_mutex;

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO ";
    case Level::kWarn: return "WARN ";
    case Level::kError: return "ERROR";
  }
  return "?";
}

}  // namespace

void set_rank(int rank, int world_size) {
  g_rank = rank;
  g_world = world_size;
}
void set_all_ranks(bool all_ranks) { g_all_ranks = all_ranks; }
void set_level(Level level) { g_level = static_cast<int>(level); }

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  L4_FAIL("unknown log level '{}' (expected debug, info, warn or error)", name);
}

bool enabled(Level level) {
  if (static_cast<int>(level) < g_level.load()) return false;
  // Errors must be seen whichever rank hits them; the rest is rank 0's unless asked otherwise.
  return level == Level::kError || g_all_ranks.load() || g_rank.load() == 0;
}

void write(Level level, std::string_view message) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::string line;
  if (g_world.load() > 1) {
    line = fmt::format("{} {} [rank {}/{}] {}\n", stamp, level_name(level), g_rank.load(), g_world.load(),
                       message);
  } else {
    line = fmt::format("{} {} {}\n", stamp, level_name(level), message);
  }
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace l4::log
