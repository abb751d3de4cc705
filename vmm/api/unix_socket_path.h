// Claiming a filesystem path for a listening unix socket: replaces a stale
// socket file left by a dead process, refuses a path someone still listens on.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace godwit::api {

/// Makes `path` free for bind(): absent is fine; a socket nobody accepts on is removed; a
/// socket with a listener fails "API socket PATH already in use"; any other file fails.
[[nodiscard]] Result<void> claim_socket_path(const std::string& path);

/// Identity of a file (device + inode), to remove a socket file only if it is still ours.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
};

/// The identity of the file at `path`, or an error if it cannot be stat'ed.
[[nodiscard]] Result<FileIdentity> file_identity(const std::string& path);

/// Unlinks `path` if it is still the file `expected`; otherwise leaves it alone.
void remove_socket_file_if_same(const std::string& path, FileIdentity expected);

}  // namespace godwit::api
