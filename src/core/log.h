// Rank-aware logging to stderr: "2026-11-27 08:30:01 INFO  [rank 0/2] message".
// By default only rank 0 prints INFO/DEBUG/WARN; errors print on every rank. The level is tested
// before the message is formatted.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace l4::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_rank(int rank, int world_size);
void set_all_ranks(bool all_ranks);
void set_level(Level level);
// Parses "debug|info|warn|error"; throws l4::Error otherwise.
Level parse_level(std::string_view name);

bool enabled(Level level);
void write(Level level, std::string_view message);

}  // namespace l4::log

#define L4_LOG_AT(level, ...)                                                           \
  do {                                                                                  \
    if (::l4::log::enabled(level)) ::l4::log::write(level, fmt::format(__VA_ARGS__)); \
  } while (0)
#define L4_LOG_DEBUG(...) L4_LOG_AT(::l4::log::Level::kDebug, __VA_ARGS__)
#define L4_LOG_INFO(...) L4_LOG_AT(::l4::log::Level::kInfo, __VA_ARGS__)
#define L4_LOG_WARN(...) L4_LOG_AT(::l4::log::Level::kWarn, __VA_ARGS__)
#define L4_LOG_ERROR(...) L4_LOG_AT(::l4::log::Level::kError, __VA_ARGS__)
