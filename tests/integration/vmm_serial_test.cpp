// The serial console end to end: a guest reads what a client types on the
// unix-socket console (--serial unix:PATH) and its answers come back on the
// same socket.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "godwit_process.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

int connect_unix(const std::string& path, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    ::close(fd);
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

/// Reads from `fd` until `text` has arrived (or the timeout).
std::string read_until(int fd, const std::string& text, std::chrono::seconds timeout) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  timeval tv{0, 100'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (got.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n == 0) break;
  }
  return got;
}

TEST(SerialConsole, UnixSocketInputReachesTheGuestAndOutputComesBack) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  std::string sock = dir.file("console.sock");
  Process vm({build_path("bin/godwit"), "--image", probe("echo"), "--serial", "unix:" + sock},
             dir.file("out"), dir.file("err"));
  int fd = connect_unix(sock, 10s);
  ASSERT_GE(fd, 0) << vm.stderr_text();
  // Output written before the client connected is replayed.
  EXPECT_NE(read_until(fd, "ready\n", 10s).find("ready\n"), std::string::npos);
  ASSERT_EQ(::write(fd, "hello", 5), 5);
  EXPECT_NE(read_until(fd, "HELLO", 10s).find("HELLO"), std::string::npos);
  ASSERT_EQ(::write(fd, "q", 1), 1);
  EXPECT_EQ(vm.wait(30s), 0x11) << vm.stderr_text();
  ::close(fd);
}

}  // namespace
}  // namespace godwit::test
