#include "core/error.h"

namespace l4::detail {

void throw_user_error(std::string message) { throw Error(message); }

void throw_internal_error(const char* file, int line, const char* condition, std::string message) {
  throw InternalError(fmt::format("internal error (bug) at {}:{}: {} failed{}{}", file, line, condition,
                                  message.empty() ? "" : ": ", message));
}

}  // namespace l4::detail
