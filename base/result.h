// Errors as values: every fallible operation returns Result<T>, an
// std::expected whose error names what was being done and why it failed.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace godwit {

/// A failure with a human-readable message naming the operation and its
/// arguments, plus the errno (0 when not a syscall failure).
struct Error {
  std::string message;
  int code = 0;

  /// Builds an error from the current errno: "<what>: <strerror(errno)>".
  static Error from_errno(std::string what) {
    int e = errno;
    return Error{std::move(what) + ": " + std::strerror(e), e};
  }
  /// Builds an error from an explicit errno value.
  static Error from_errno(std::string what, int e) {
    return Error{std::move(what) + ": " + std::strerror(e), e};
  }
  /// Prefixes context to the message ("loading kernel: " + message).
  [[nodiscard]] Error context(const std::string& what) const {
    return Error{what + ": " + message, code};
  }
};

template <typename T = void>
using Result = std::expected<T, Error>;

/// Shorthand for returning a failure: `return fail("bad size {}", ...)`.
inline std::unexpected<Error> fail(std::string message, int code = 0) {
  return std::unexpected(Error{std::move(message), code});
}
inline std::unexpected<Error> fail(Error e) { return std::unexpected(std::move(e)); }
/// Failure from the current errno.
inline std::unexpected<Error> fail_errno(std::string what) {
  return std::unexpected(Error::from_errno(std::move(what)));
}

/// `result` with "<prefix>: " put before its error message; a success
/// passes through. (GCC 12's std::expected has no transform_error.)
template <typename T>
Result<T> with_context(Result<T> result, std::string_view prefix) {
  if (!result) result.error().message = std::string(prefix) + ": " + result.error().message;
  return result;
}

}  // namespace godwit

/// Early-return on error: `auto v = TRY(f());` (GNU statement expression).
#define TRY(expr)                                                                           \
  ({                                                                                        \
    auto&& godwit_try_result_ = (expr);                                                     \
    if (!godwit_try_result_) return std::unexpected(std::move(godwit_try_result_).error()); \
    std::move(godwit_try_result_).value();                                                  \
  })

/// Early-return on error for Result<void>.
#define TRY_VOID(expr)                                                                      \
  do {                                                                                      \
    auto&& godwit_try_result_ = (expr);                                                     \
    if (!godwit_try_result_) return std::unexpected(std::move(godwit_try_result_).error()); \
  } while (0)
