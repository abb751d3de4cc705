// Helpers for tests that need a real tap: a private network namespace per
// test (so no frame ever leaves the test), interface setup through ioctls,
// and an AF_PACKET socket to see and inject frames on the host side.
//
// ScopedNetns::enter() unshares CLONE_NEWNET on the calling thread (gtest
// runs each TEST body on the main thread; ctest even runs each TEST in its
// own process) and the destructor switches back, so a test executable run
// directly also leaves the host namespace untouched after each test.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/unique_fd.h"

namespace godwit::test {

/// Why tap tests cannot run here (empty when they can): not root, no tun.
inline std::string tap_unavailable_reason() {
  if (::geteuid() != 0) return "not root: tap tests need CAP_NET_ADMIN";
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
    return std::string("/dev/net/tun unusable: ") + std::strerror(errno);
  }
  return {};
}

/// A fresh network namespace for the calling thread, left on destruction.
class ScopedNetns {
 public:
  ScopedNetns() = default;
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns() { leave(); }

  /// Enters a new namespace; returns why not (empty on success).
  std::string enter() {
    original_.reset(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!original_) return std::string("open /proc/self/ns/net: ") + std::strerror(errno);
    if (::unshare(CLONE_NEWNET) != 0) {
      original_.reset();
      return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    }
    return {};
  }
  /// Back to the namespace the thread had before enter() (the new one goes
  /// away with its last user, e.g. the device's tap).
  void leave() {
    if (original_) {
      if (::setns(original_.get(), CLONE_NEWNET) != 0) ADD_FAILURE() << "setns back failed";
      original_.reset();
    }
  }

 private:
  UniqueFd original_;
};

/// Turns IPv6 off in the current namespace so the kernel sends no router
/// solicitations or MLD reports that would compete for receive buffers.
inline void disable_ipv6() {
  for (const char* path : {"/proc/sys/net/ipv6/conf/all/disable_ipv6",
                           "/proc/sys/net/ipv6/conf/default/disable_ipv6"}) {
    UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
    if (fd) (void)!::write(fd.get(), "1", 1);
  }
}

/// Gives interface `name` the IPv4 address `ipv4`/`prefix` and brings it up
/// (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS); returns what failed, or empty.
inline std::string configure_interface(const std::string& name, const char* ipv4, int prefix) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return std::string("socket AF_INET: ") + std::strerror(errno);
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  auto set_address = [&](unsigned long op, uint32_t address_be) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = address_be;
    std::memcpy(&request.ifr_addr, &address, sizeof address);
    return ::ioctl(sock.get(), op, &request) == 0;
  };
  in_addr address{};
  if (::inet_pton(AF_INET, ipv4, &address) != 1) return std::string("bad address ") + ipv4;
  uint32_t mask = prefix == 0 ? 0 : htonl(~0u << (32 - prefix));
  if (!set_address(SIOCSIFADDR, address.s_addr)) {
    return "SIOCSIFADDR " + name + ": " + std::strerror(errno);
  }
  if (!set_address(SIOCSIFNETMASK, mask)) {
    return "SIOCSIFNETMASK " + name + ": " + std::strerror(errno);
  }
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &request) != 0) {
    return "SIOCGIFFLAGS " + name + ": " + std::strerror(errno);
  }
  request.ifr_flags |= IFF_UP;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &request) != 0) {
    return "SIOCSIFFLAGS " + name + ": " + std::strerror(errno);
  }
  return {};
}

/// A raw AF_PACKET socket bound to interface `name` (every protocol): sees
/// frames the interface receives and sends frames out of it. Invalid on error.
inline UniqueFd open_packet_socket(const std::string& name) {
  UniqueFd sock(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL)));
  if (!sock) return sock;
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
  if (address.sll_ifindex == 0 ||
      ::bind(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    sock.reset();
  }
  return sock;
}

/// Waits until `fd` is readable, at most `timeout_ms` (a bound for a frame
/// the kernel is about to produce, not a timing assertion).
inline bool wait_readable(int fd, int timeout_ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/// Two private network namespaces joined by a veth pair, 10.199.0.1/24 in
/// "a" and 10.199.0.2/24 in "b", for traffic that crosses a real (virtual)
/// link instead of loopback. Made with ip(8) as named namespaces (so any
/// thread can enter either by path) and deleted on destruction.
class VethPair {
 public:
  static constexpr const char* kAddressA = "10.199.0.1";
  static constexpr const char* kAddressB = "10.199.0.2";

  VethPair() = default;
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  ~VethPair() {
    for (const std::string& ns : {a_, b_}) {
      if (!ns.empty()) (void)!std::system(("ip netns del " + ns + " 2>/dev/null").c_str());
    }
  }

  /// Creates both namespaces and the link; returns why not (empty on success).
  std::string create() {
    if (::geteuid() != 0) return "not root: creating network namespaces needs CAP_SYS_ADMIN";
    if (std::system("ip -V >/dev/null 2>&1") != 0) return "ip(8) is not installed (iproute2)";
    const std::string tag = std::to_string(::getpid());
    a_ = "godwit-test-a-" + tag;
    b_ = "godwit-test-b-" + tag;
    const std::string commands[] = {
        "ip netns add " + a_,
        "ip netns add " + b_,
        "ip -n " + a_ + " link add veth-a type veth peer name veth-b netns " + b_,
        "ip -n " + a_ + " addr add " + kAddressA + "/24 dev veth-a",
        "ip -n " + b_ + " addr add " + kAddressB + "/24 dev veth-b",
        "ip -n " + a_ + " link set veth-a up",
        "ip -n " + b_ + " link set veth-b up",
        "ip -n " + a_ + " link set lo up",
        "ip -n " + b_ + " link set lo up",
    };
    for (const std::string& command : commands) {
      if (std::system((command + " 2>/dev/null").c_str()) != 0) return "failed: " + command;
    }
    return {};
  }
  /// Moves the calling thread into namespace a / b; returns why not.
  [[nodiscard]] std::string enter_a() const { return enter(a_); }
  [[nodiscard]] std::string enter_b() const { return enter(b_); }

 private:
  static std::string enter(const std::string& name) {
    UniqueFd ns(::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return "open /run/netns/" + name + ": " + std::strerror(errno);
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      return "setns " + name + ": " + std::strerror(errno);
    }
    return {};
  }
  std::string a_;
  std::string b_;
};

}  // namespace godwit::test

/// In a fixture's SetUp(): skips unless root with /dev/net/tun, then moves
/// the thread into the fresh namespace held by `scope` (a ScopedNetns).
#define GODWIT_ENTER_TEST_NETNS(scope)                                                    \
  do {                                                                                    \
    if (auto reason = ::godwit::test::tap_unavailable_reason(); !reason.empty())          \
      GTEST_SKIP() << reason << ": tap test skipped";                                     \
    if (auto reason = (scope).enter(); !reason.empty())                                   \
      GTEST_SKIP() << reason << ": cannot get a private network namespace, test skipped"; \
  } while (0)
