// Migration transports: addresses ("tcp:HOST:PORT", "unix:PATH"), a
// listening socket for the destination, an outgoing connect for the source,
// and a full-duplex byte connection with exact reads, gathered writes and a
// shutdown() that any thread may call to wake a blocked reader or writer
// (cancel, fatal error on another channel).
//
// Errors name the peer and what happened: "tcp:127.0.0.1:4444: connection
// refused", "...: connection closed by peer", "...: timed out after 5000 ms".
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace godwit::migration {

/// A parsed migration address.
struct Address {
  enum class Kind { tcp, unix_socket };
  Kind kind = Kind::tcp;
  std::string host;   ///< tcp: a name or a literal ("127.0.0.1", "::1" given as "[::1]")
  uint16_t port = 0;  ///< tcp: 0 only for listen (the kernel picks one)
  std::string path;   ///< unix: the socket path

  /// The canonical text: "tcp:HOST:PORT" ("tcp:[::1]:PORT") or "unix:PATH".
  [[nodiscard]] std::string text() const;
};

/// Parses "tcp:HOST:PORT" (HOST may be "[v6]"; PORT 0..65535) or
/// "unix:PATH" (PATH non-empty, at most 107 bytes). Errors say which part is wrong.
[[nodiscard]] Result<Address> parse_address(std::string_view text);

/// One connected stream socket. Reads and writes block; shutdown() from
/// another thread makes them fail promptly.
class Connection {
 public:
  Connection() = default;
  /// Wraps a connected socket; `peer` names it in errors.
  Connection(UniqueFd fd, std::string peer);
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;

  /// Writes every byte of `parts` (writev, looping on short writes and
  /// EINTR). A closed peer fails with "...: connection closed by peer"
  /// (never SIGPIPE).
  [[nodiscard]] Result<void> write_all(std::span<const iovec> parts);
  /// Writes every byte of `bytes`.
  [[nodiscard]] Result<void> write_all(std::span<const uint8_t> bytes);
  /// Fills `out` exactly. EOF before the first byte and EOF midway both fail
  /// with "...: connection closed by peer" (midway adds "after N of M bytes").
  [[nodiscard]] Result<void> read_exact(std::span<uint8_t> out);
  /// Waits until a byte can be read or the peer closed, for at most
  /// `timeout` (negative: forever). True when readable, false on timeout.
  [[nodiscard]] Result<bool> wait_readable(std::chrono::milliseconds timeout);

  /// shutdown(SHUT_RDWR): blocked and later reads/writes fail. Safe from any
  /// thread, idempotent; the fd stays open until destruction.
  void shutdown();
  /// Says goodbye without losing data: sends FIN after everything written so
  /// far, then reads and discards what the peer still sends until it closes
  /// or `linger` passes. A plain close with unread input would send a reset,
  /// which may destroy our last message (an ERROR) before the peer reads it.
  void close_gracefully(std::chrono::milliseconds linger);
  /// Whether shutdown() was called.
  [[nodiscard]] bool is_shut_down() const;

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& peer() const { return peer_; }
  [[nodiscard]] bool valid() const { return fd_.valid(); }

 private:
  UniqueFd fd_;
  std::string peer_;
  std::atomic<bool> shut_down_{false};
};

/// Connects to `address` within `timeout`. TCP sockets get TCP_NODELAY.
[[nodiscard]] Result<Connection> connect_to(const Address& address,
                                            std::chrono::milliseconds timeout);

/// A listening socket (destination side).
class Listener {
 public:
  /// Binds and listens on `address`. tcp: SO_REUSEADDR; port 0 picks a free
  /// port (see bound()). unix: fails if the path exists (never unlinks a
  /// file it did not create); the socket file is removed on destruction.
  [[nodiscard]] static Result<Listener> listen(const Address& address);

  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  /// The address actually bound (the real port for tcp port 0).
  [[nodiscard]] const Address& bound() const { return bound_; }
  /// Accepts one connection within `timeout` (negative: forever). Fails with
  /// "timed out" on timeout and with "listener closed" after close().
  [[nodiscard]] Result<Connection> accept(std::chrono::milliseconds timeout);
  /// Stops listening; a blocked accept() returns "listener closed". Safe
  /// from any thread.
  void close();

 private:
  Listener() = default;
  UniqueFd fd_;
  UniqueFd wake_;  ///< eventfd that close() signals
  Address bound_;
  bool unlink_on_close_ = false;
};

}  // namespace godwit::migration
