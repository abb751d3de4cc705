// A connected pair of migration Connections over a unix socketpair, for the
// tests of the layers that speak over one (wire frames, multifd packets).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "base/unique_fd.h"
#include "migration/transport.h"

namespace godwit::test {

struct Pair {
  migration::Connection a;
  migration::Connection b;
};

/// Two connected ends of a unix socketpair, named "end-a" and "end-b".
inline Pair socket_pair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {migration::Connection(UniqueFd(fds[0]), "end-a"),
          migration::Connection(UniqueFd(fds[1]), "end-b")};
}

}  // namespace godwit::test
