// UnixSocketConsole: one IO thread polls the listening socket (while no
// client is connected), the client (input, and output when some is
// pending) and an eventfd (stop and "output pending" wake-ups). vCPU threads
// call write(), which sends without blocking and buffers what the client does
// not take yet.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "devices/serial_backends.h"

namespace godwit {
namespace {

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return fail("serial socket " + path + ": path must be 1 to " +
                std::to_string(sizeof addr.sun_path - 1) + " bytes long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Removes a leftover socket file nobody is accepting on; refuses to touch a
// live socket or a file that is not a socket.
Result<void> remove_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail_errno("serial socket " + path + ": lstat");
  }
  if (!S_ISSOCK(st.st_mode)) return fail("serial socket " + path + ": exists and is not a socket");
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return fail_errno("serial socket " + path + ": socket");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    return fail("serial socket " + path + ": already in use by another process");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return fail_errno("serial socket " + path + ": remove stale socket file");
  return {};
}

}  // namespace

Result<std::unique_ptr<UnixSocketConsole>> UnixSocketConsole::listen(const std::string& path) {
  sockaddr_un addr = TRY(socket_address(path));
  TRY_VOID(remove_stale_socket(path, addr));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("serial socket " + path + ": socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return fail_errno("serial socket " + path + ": bind");
  if (::listen(fd.get(), 4) != 0) return fail_errno("serial socket " + path + ": listen");
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) return fail_errno("serial socket " + path + ": eventfd");
  return std::unique_ptr<UnixSocketConsole>(
      new UnixSocketConsole(path, std::move(fd), UniqueFd(wake)));
}

UnixSocketConsole::UnixSocketConsole(std::string path, UniqueFd listen_fd, UniqueFd wake_fd)
    : path_(std::move(path)), listen_fd_(std::move(listen_fd)), wake_fd_(std::move(wake_fd)) {}

UnixSocketConsole::~UnixSocketConsole() { stop(); }

void UnixSocketConsole::start(SerialInputHandler input) {
  if (thread_.joinable() || stopping_.load()) return;
  thread_ = std::thread([this, in = std::move(input)] { run(in); });
}

void UnixSocketConsole::stop() {
  if (stopping_.exchange(true)) return;
  wake();
  if (thread_.joinable()) thread_.join();
  disconnect_client();
  listen_fd_.reset();
  ::unlink(path_.c_str());
}

void UnixSocketConsole::wake() {
  uint64_t one = 1;
  ssize_t unused = ::write(wake_fd_.get(), &one, sizeof one);
  (void)unused;
}

bool UnixSocketConsole::client_connected() const {
  std::lock_guard lock(mutex_);
  return client_fd_.valid();
}

void UnixSocketConsole::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  buffer_locked(bytes);
  if (client_fd_) {
    flush_locked();
    if (!pending_.empty()) wake();  // let the IO thread wait for POLLOUT
  }
}

void UnixSocketConsole::buffer_locked(std::span<const uint8_t> bytes) {
  if (bytes.size() >= kBufferLimit) {
    pending_.assign(reinterpret_cast<const char*>(bytes.data() + bytes.size() - kBufferLimit),
                    kBufferLimit);
    return;
  }
  pending_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (pending_.size() > kBufferLimit) pending_.erase(0, pending_.size() - kBufferLimit);
}

void UnixSocketConsole::flush_locked() {
  while (!pending_.empty() && client_fd_) {
    ssize_t n =
        ::send(client_fd_.get(), pending_.data(), pending_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: wait for POLLOUT; errors: the IO thread sees HUP
    pending_.erase(0, static_cast<size_t>(n));
  }
}

void UnixSocketConsole::accept_client() {
  int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
      log::warn("serial socket " + path_ + ": accept: " + std::strerror(errno));
    return;
  }
  std::lock_guard lock(mutex_);
  client_fd_.reset(fd);
  flush_locked();  // replay what was written while nobody listened
}

void UnixSocketConsole::disconnect_client() {
  std::lock_guard lock(mutex_);
  client_fd_.reset();
}

void UnixSocketConsole::run(SerialInputHandler input) {
  uint8_t buf[4096];
  while (!stopping_.load()) {
    pollfd fds[2] = {{wake_fd_.get(), POLLIN, 0}, {-1, 0, 0}};
    {
      std::lock_guard lock(mutex_);
      if (client_fd_) {
        fds[1] = {client_fd_.get(), static_cast<short>(POLLIN | (pending_.empty() ? 0 : POLLOUT)),
                  0};
      } else {
        fds[1] = {listen_fd_.get(), POLLIN, 0};
      }
    }
    bool serving_client = fds[1].fd != listen_fd_.get();
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::warn("serial socket " + path_ + ": poll: " + std::strerror(errno));
      return;
    }
    if (fds[0].revents) {
      uint64_t count;
      ssize_t unused = ::read(wake_fd_.get(), &count, sizeof count);
      (void)unused;
    }
    if (stopping_.load()) return;
    short ev = fds[1].revents;
    if (!ev) continue;
    if (!serving_client) {
      accept_client();
      continue;
    }
    if (ev & POLLOUT) {
      std::lock_guard lock(mutex_);
      flush_locked();
    }
    if (ev & POLLIN) {
      ssize_t n = ::recv(fds[1].fd, buf, sizeof buf, 0);
      if (n > 0) {
        deliver_input(input, std::span(buf, static_cast<size_t>(n)), stopping_);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      disconnect_client();  // EOF or error
      continue;
    }
    if (ev & (POLLHUP | POLLERR | POLLNVAL)) disconnect_client();
  }
}

}  // namespace godwit
