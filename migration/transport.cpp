// Migration transports over stream sockets (see transport.h).
//
// Blocking sockets throughout: a migration channel has one reader and one
// writer thread per direction, and the only cross-thread action is
// shutdown(), which the kernel turns into an immediate EOF / EPIPE for any
// thread blocked in the socket. Timeouts exist only where a peer may never
// show up (connect, accept, wait_readable) and use poll().
#include "migration/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace godwit::migration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;  // 107 on Linux

std::string ms_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

/// Milliseconds left until `deadline` for poll(); -1 when there is none.
int poll_timeout(bool forever, Clock::time_point deadline) {
  if (forever) return -1;
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, INT_MAX));
}

/// "tcp:1.2.3.4:5" for a peer sockaddr (used to name accepted connections).
std::string sockaddr_text(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    port = ntohs(in.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    port = ntohs(in6.sin6_port);
  }
  Address a;
  a.host = host;
  a.port = port;
  return a.text();
}

Result<void> set_tcp_options(int fd, const std::string& name) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
    return fail_errno(name + ": setsockopt TCP_NODELAY");
  // Keepalive probes find a peer that vanished without a FIN or RST (host
  // down, cable pulled) in about 20 s, so a side waiting for data that will
  // never come fails instead of hanging (10 s idle, then 5 probes 2 s apart).
  const int idle = 10, interval = 2, count = 5;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0)
    return fail_errno(name + ": setsockopt keepalive");
  return {};
}

Result<void> set_blocking(int fd, bool blocking, const std::string& name) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return fail_errno(name + ": fcntl F_GETFL");
  flags = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  if (fcntl(fd, F_SETFL, flags) != 0) return fail_errno(name + ": fcntl F_SETFL");
  return {};
}

/// Resolves a tcp address (names through getaddrinfo; literals stay literal).
Result<std::vector<sockaddr_storage>> resolve(const Address& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* list = nullptr;
  std::string port = std::to_string(address.port);
  int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return fail(address.text() + ": cannot resolve '" + address.host + "': " + why);
  }
  std::vector<sockaddr_storage> out;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    out.push_back(ss);
  }
  freeaddrinfo(list);
  if (out.empty()) return fail(address.text() + ": '" + address.host + "' has no address");
  return out;
}

socklen_t sockaddr_length(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

sockaddr_un unix_sockaddr(const std::string& path) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());  // length checked by parse_address
  return un;
}

/// One non-blocking connect attempt, waited for until `deadline`. Returns a
/// blocking connected socket, or the errno of the failure (ETIMEDOUT on timeout).
Result<UniqueFd> connect_one(int family, const sockaddr* sa, socklen_t len, const std::string& name,
                             bool forever, Clock::time_point deadline, milliseconds timeout) {
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno(name + ": socket");
  for (;;) {
    if (::connect(fd.get(), sa, len) == 0) break;
    int e = errno;
    if (e == EINTR) continue;
    // A unix socket with a full backlog says EAGAIN rather than waiting:
    // retry until the deadline like a slow TCP handshake.
    if (e == EAGAIN && family == AF_UNIX) {
      if (!forever && Clock::now() >= deadline)
        return fail(name + ": connect timed out after " + ms_text(timeout), ETIMEDOUT);
      pollfd none{};
      poll(&none, 0, 10);
      continue;
    }
    if (e != EINPROGRESS) return fail(Error::from_errno(name + ": connect", e));
    pollfd p{fd.get(), POLLOUT, 0};
    int n;
    do {
      n = poll(&p, 1, poll_timeout(forever, deadline));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return fail_errno(name + ": poll");
    if (n == 0) return fail(name + ": connect timed out after " + ms_text(timeout), ETIMEDOUT);
    int err = 0;
    socklen_t errlen = sizeof err;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &errlen) != 0)
      return fail_errno(name + ": getsockopt SO_ERROR");
    if (err != 0) return fail(Error::from_errno(name + ": connect", err));
    break;
  }
  TRY_VOID(set_blocking(fd.get(), true, name));
  return fd;
}

}  // namespace

// ---------------------------------------------------------------------------
// Address

std::string Address::text() const {
  if (kind == Kind::unix_socket) return "unix:" + path;
  bool v6 = host.find(':') != std::string::npos;
  return "tcp:" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<Address> parse_address(std::string_view text) {
  const std::string whole(text);
  auto bad = [&](const std::string& what) { return fail(whole + ": " + what); };
  Address a;
  if (text.starts_with("unix:")) {
    a.kind = Address::Kind::unix_socket;
    a.path = std::string(text.substr(5));
    if (a.path.empty()) return bad("missing socket path");
    if (a.path.find('\0') != std::string::npos) return bad("socket path contains a NUL byte");
    if (a.path.size() > kMaxUnixPath)
      return bad("socket path of " + std::to_string(a.path.size()) + " bytes exceeds the " +
                 std::to_string(kMaxUnixPath) + "-byte limit");
    return a;
  }
  if (!text.starts_with("tcp:")) {
    auto colon = text.find(':');
    std::string scheme(colon == std::string_view::npos ? text : text.substr(0, colon));
    return bad("unknown transport '" + scheme + "' (expected tcp:HOST:PORT or unix:PATH)");
  }
  a.kind = Address::Kind::tcp;
  std::string_view rest = text.substr(4);
  std::string_view port_text;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 host");
    a.host = std::string(rest.substr(1, close - 1));
    if (a.host.empty()) return bad("empty host between '[' and ']'");
    std::string_view after = rest.substr(close + 1);
    if (after.empty()) return bad("missing port");
    if (after[0] != ':') return bad("expected ':' after ']'");
    port_text = after.substr(1);
  } else {
    auto colon = rest.find(':');
    if (colon == std::string_view::npos) {
      if (rest.empty()) return bad("missing host and port");
      return bad("missing port");
    }
    a.host = std::string(rest.substr(0, colon));
    port_text = rest.substr(colon + 1);
    if (port_text.find(':') != std::string_view::npos)
      return bad("an IPv6 host must be written in brackets, e.g. tcp:[::1]:4444");
    if (a.host.empty()) return bad("missing host (use 0.0.0.0 or [::] for every interface)");
  }
  if (port_text.empty()) return bad("missing port");
  if (port_text.size() > 10 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad("port '" + std::string(port_text) + "' is not a number");
  unsigned long port = std::stoul(std::string(port_text));
  if (port > 65535) return bad("port " + std::to_string(port) + " out of range (0..65535)");
  a.port = static_cast<uint16_t>(port);
  return a;
}

// ---------------------------------------------------------------------------
// Connection

Connection::Connection(UniqueFd fd, std::string peer)
    : fd_(std::move(fd)), peer_(std::move(peer)) {}

Connection::Connection(Connection&& other) noexcept
    : fd_(std::move(other.fd_)),
      peer_(std::move(other.peer_)),
      shut_down_(other.shut_down_.exchange(false)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    fd_ = std::move(other.fd_);
    peer_ = std::move(other.peer_);
    shut_down_.store(other.shut_down_.exchange(false));
  }
  return *this;
}

Result<void> Connection::write_all(std::span<const iovec> parts) {
  size_t total = 0;
  for (const auto& p : parts) total += p.iov_len;
  size_t index = 0;   // first part not fully written
  size_t offset = 0;  // bytes of parts[index] already written
  size_t written = 0;
  bool socket = true;  // false after ENOTSOCK: plain writev (pipes in tests)
  std::vector<iovec> window;
  while (index < parts.size()) {
    if (parts[index].iov_len == offset) {
      ++index;
      offset = 0;
      continue;
    }
    // The kernel takes at most IOV_MAX parts per call; rebuild the window
    // from the first unwritten byte after every short write.
    window.clear();
    for (size_t i = index; i < parts.size() && window.size() < IOV_MAX; ++i) {
      iovec v = parts[i];
      if (i == index) {
        v.iov_base = static_cast<uint8_t*>(v.iov_base) + offset;
        v.iov_len -= offset;
      }
      if (v.iov_len != 0) window.push_back(v);
    }
    ssize_t n;
    if (socket) {
      // sendmsg rather than writev: only it takes MSG_NOSIGNAL, so a closed
      // peer is an EPIPE error instead of a process-killing SIGPIPE.
      msghdr msg{};
      msg.msg_iov = window.data();
      msg.msg_iovlen = window.size();
      n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
      if (n < 0 && errno == ENOTSOCK) {
        socket = false;
        continue;
      }
    } else {
      n = ::writev(fd_.get(), window.data(), static_cast<int>(window.size()));
    }
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (is_shut_down()) return fail(peer_ + ": connection shut down", e);
      if (e == EPIPE) return fail(peer_ + ": connection closed by peer", e);
      if (e == ECONNRESET) return fail(peer_ + ": connection reset by peer", e);
      return fail(Error::from_errno(peer_ + ": write after " + std::to_string(written) + " of " +
                                        std::to_string(total) + " bytes",
                                    e));
    }
    written += static_cast<size_t>(n);
    auto left = static_cast<size_t>(n);
    while (left > 0) {
      size_t in_part = parts[index].iov_len - offset;
      if (left < in_part) {
        offset += left;
        left = 0;
      } else {
        left -= in_part;
        ++index;
        offset = 0;
      }
    }
  }
  return {};
}

Result<void> Connection::write_all(std::span<const uint8_t> bytes) {
  iovec v{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  return write_all(std::span<const iovec>(&v, 1));
}

Result<void> Connection::read_exact(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd_.get(), out.data() + done, out.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    int e = n == 0 ? 0 : errno;
    if (e == EINTR) continue;
    std::string where = done == 0 ? ""
                                  : " after " + std::to_string(done) + " of " +
                                        std::to_string(out.size()) + " bytes";
    // After our own shutdown() the kernel reports EOF too; say who ended it.
    if (is_shut_down()) return fail(peer_ + ": connection shut down" + where, e);
    if (n == 0) return fail(peer_ + ": connection closed by peer" + where);
    if (e == ECONNRESET) return fail(peer_ + ": connection reset by peer" + where, e);
    return fail(Error::from_errno(peer_ + ": read" + where, e));
  }
  return {};
}

Result<bool> Connection::wait_readable(milliseconds timeout) {
  bool forever = timeout.count() < 0;
  auto deadline = Clock::now() + (forever ? milliseconds(0) : timeout);
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    int n = poll(&p, 1, poll_timeout(forever, deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(peer_ + ": poll");
    }
    // POLLHUP / POLLERR count as readable: the next read reports what happened.
    return n > 0;
  }
}

void Connection::shutdown() {
  if (shut_down_.exchange(true)) return;
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
}

void Connection::close_gracefully(milliseconds linger) {
  if (!fd_ || is_shut_down()) return;
  ::shutdown(fd_.get(), SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + linger;
  std::array<uint8_t, 65536> sink;
  while (std::chrono::steady_clock::now() < deadline) {
    auto ready = wait_readable(
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (!ready || !*ready) break;
    const ssize_t n = ::read(fd_.get(), sink.data(), sink.size());
    if (n <= 0) break;  // EOF: the peer has closed too
  }
  shutdown();
}

bool Connection::is_shut_down() const { return shut_down_.load(); }

// ---------------------------------------------------------------------------
// connect_to

Result<Connection> connect_to(const Address& address, milliseconds timeout) {
  const std::string name = address.text();
  bool forever = timeout.count() < 0;
  auto deadline = Clock::now() + (forever ? milliseconds(0) : timeout);
  if (address.kind == Address::Kind::unix_socket) {
    sockaddr_un un = unix_sockaddr(address.path);
    auto fd = TRY(connect_one(AF_UNIX, reinterpret_cast<const sockaddr*>(&un), sizeof un, name,
                              forever, deadline, timeout));
    return Connection(std::move(fd), name);
  }
  if (address.port == 0) return fail(name + ": cannot connect to port 0");
  auto addresses = TRY(resolve(address, false));
  Error last;
  for (const auto& ss : addresses) {
    auto fd = connect_one(ss.ss_family, reinterpret_cast<const sockaddr*>(&ss), sockaddr_length(ss),
                          name, forever, deadline, timeout);
    if (!fd) {
      last = fd.error();
      if (last.code == ETIMEDOUT) break;  // the whole budget is spent
      continue;
    }
    TRY_VOID(set_tcp_options(fd->get(), name));
    return Connection(std::move(*fd), name);
  }
  return fail(last);
}

// ---------------------------------------------------------------------------
// Listener

Result<Listener> Listener::listen(const Address& address) {
  Listener l;
  l.bound_ = address;
  const std::string name = address.text();
  if (address.kind == Address::Kind::unix_socket) {
    l.fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!l.fd_) return fail_errno(name + ": socket");
    sockaddr_un un = unix_sockaddr(address.path);
    // bind() refuses an existing path (EADDRINUSE) and never replaces it: a
    // stale socket from a crashed run must be removed by whoever owns it.
    if (bind(l.fd_.get(), reinterpret_cast<const sockaddr*>(&un), sizeof un) != 0) {
      int e = errno;
      if (e == EADDRINUSE) return fail(name + ": path already exists; not replacing it", e);
      return fail(Error::from_errno(name + ": bind", e));
    }
    l.unlink_on_close_ = true;
  } else {
    auto addresses = TRY(resolve(address, true));
    const sockaddr_storage& ss = addresses.front();
    l.fd_.reset(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!l.fd_) return fail_errno(name + ": socket");
    int one = 1;
    if (setsockopt(l.fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
      return fail_errno(name + ": setsockopt SO_REUSEADDR");
    if (bind(l.fd_.get(), reinterpret_cast<const sockaddr*>(&ss), sockaddr_length(ss)) != 0)
      return fail_errno(name + ": bind");
    sockaddr_storage actual{};
    socklen_t len = sizeof actual;
    if (getsockname(l.fd_.get(), reinterpret_cast<sockaddr*>(&actual), &len) != 0)
      return fail_errno(name + ": getsockname");
    l.bound_.port = actual.ss_family == AF_INET6
                        ? ntohs(reinterpret_cast<const sockaddr_in6&>(actual).sin6_port)
                        : ntohs(reinterpret_cast<const sockaddr_in&>(actual).sin_port);
  }
  if (::listen(l.fd_.get(), 16) != 0) return fail_errno(name + ": listen");
  l.wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!l.wake_) return fail_errno(name + ": eventfd");
  return l;
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::move(other.fd_)),
      wake_(std::move(other.wake_)),
      bound_(std::move(other.bound_)),
      unlink_on_close_(std::exchange(other.unlink_on_close_, false)) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    if (unlink_on_close_) ::unlink(bound_.path.c_str());
    fd_ = std::move(other.fd_);
    wake_ = std::move(other.wake_);
    bound_ = std::move(other.bound_);
    unlink_on_close_ = std::exchange(other.unlink_on_close_, false);
  }
  return *this;
}

Listener::~Listener() {
  // Only the file this listener's bind() created; the fd is closed after.
  if (unlink_on_close_) ::unlink(bound_.path.c_str());
}

Result<Connection> Listener::accept(milliseconds timeout) {
  const std::string name = bound_.text();
  if (!fd_ || !wake_) return fail(name + ": listener closed");
  bool forever = timeout.count() < 0;
  auto deadline = Clock::now() + (forever ? milliseconds(0) : timeout);
  for (;;) {
    // The eventfd stays readable once close() signalled it, so every later
    // accept() fails at once too.
    pollfd p[2] = {{wake_.get(), POLLIN, 0}, {fd_.get(), POLLIN, 0}};
    int n = poll(p, 2, poll_timeout(forever, deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(name + ": poll");
    }
    if (p[0].revents != 0) return fail(name + ": listener closed");
    if (n == 0) return fail(name + ": accept timed out after " + ms_text(timeout), ETIMEDOUT);
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    // The listening socket is non-blocking, so a connection that vanished
    // between poll and accept (EAGAIN) just goes back to waiting.
    UniqueFd fd(accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (!fd) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED) continue;
      return fail(Error::from_errno(name + ": accept", e));
    }
    if (bound_.kind == Address::Kind::unix_socket) return Connection(std::move(fd), name);
    TRY_VOID(set_tcp_options(fd.get(), name));
    return Connection(std::move(fd), sockaddr_text(peer));
  }
}

void Listener::close() {
  if (wake_) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }
  // Stop taking connections now (new connects are refused); the fd itself is
  // closed on destruction so a concurrent accept() never polls a reused fd.
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
}

}  // namespace godwit::migration
