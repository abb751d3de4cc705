// Writing whole buffers to file descriptors: the short-write and EINTR loop
// every file writer needs, once.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace godwit {

/// Writes all of `data` to `fd`, retrying short writes and EINTR; `what`
/// names the file in the error ("writing <what>: <strerror>").
[[nodiscard]] inline Result<void> write_all(int fd, std::span<const uint8_t> data,
                                            const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("writing " + what);
    done += static_cast<size_t>(n);
  }
  return {};
}

/// write_all of the bytes of `text`.
[[nodiscard]] inline Result<void> write_all(int fd, std::string_view text,
                                            const std::string& what) {
  return write_all(fd, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), what);
}

}  // namespace godwit
