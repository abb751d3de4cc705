// A real Debian x86-64 bzImage for loader tests: fetched once per build tree
// by tests/fetch_kernel.sh (apt-get download, under a file lock so parallel
// test processes share one download). Tests skip when apt cannot reach a
// mirror.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>

#include "test_util.h"

namespace godwit::test {

/// Path of the Debian bzImage in the build tree; nullopt if fetching failed.
inline std::optional<std::string> debian_kernel() {
  static std::once_flag once;
  static std::optional<std::string> result;
  std::call_once(once, [] {
    std::string dir = build_path("test-data");
    ::mkdir(dir.c_str(), 0755);
    int lock = ::open((dir + "/.fetch.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) return;
    std::string command = source_path("tests/fetch_kernel.sh") + " " + dir;
    if (std::system(command.c_str()) == 0) result = dir + "/vmlinuz";
    ::close(lock);
  });
  return result;
}

}  // namespace godwit::test

/// Declares `const std::string path` = the Debian kernel, or skips the test.
#define REQUIRE_DEBIAN_KERNEL(path)                                            \
  auto path##_opt = ::godwit::test::debian_kernel();                           \
  if (!path##_opt)                                                             \
    GTEST_SKIP() << "no Debian kernel: tests/fetch_kernel.sh failed (apt-get " \
                    "download unreachable?)";                                  \
  const std::string path = *path##_opt
