// Error reporting. Two kinds, mapped to exit codes by cli/ (the only place that catches):
//   l4::Error          user error (bad config, bad file, bad argument) -> exit 1; the message names the
//                      file / line / key and what was expected.
//   l4::InternalError  a bug in llama4 (violated invariant)            -> exit 2.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace l4 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

class InternalError : public std::runtime_error {
 public:
  explicit InternalError(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
[[noreturn]] void throw_user_error(std::string message);
[[noreturn]] void throw_internal_error(const char* file, int line, const char* condition,
                                       std::string message);
}  // namespace detail

}  // namespace l4

// L4_CHECK(cond, "fmt", args...): user-facing check; the message must stand on its own.
#define L4_CHECK(cond, ...)                                           \
  do {                                                                \
    if (!(cond)) ::l4::detail::throw_user_error(fmt::format(__VA_ARGS__)); \
  } while (0)

#define L4_FAIL(...) ::l4::detail::throw_user_error(fmt::format(__VA_ARGS__))

// L4_ASSERT(cond, "fmt", args...): invariant of our own code; failing it is a bug.
#define L4_ASSERT(cond, ...)                                                                      \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      ::l4::detail::throw_internal_error(__FILE__, __LINE__, #cond, fmt::format("" __VA_ARGS__)); \
  } while (0)
