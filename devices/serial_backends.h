// Console backends: where UART/testdev output goes (stdout, a file, a unix
// socket, a tee that keeps the tail in memory) and where UART input comes
// from (stdin or any fd, a unix socket client). Every backend with a thread
// stops cleanly in stop() / its destructor, never hanging at shutdown.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
#include "devices/serial_sink.h"

namespace godwit {

/// Writes output to the VMM's stdout (write errors are ignored: the guest
/// must not stall on a closed terminal; the VMM ignores SIGPIPE).
class StdoutSink : public SerialSink {
 public:
  void write(std::span<const uint8_t> bytes) override;

 private:
  std::mutex mutex_;
};

/// Whether FileSink::open keeps or discards existing file contents.
enum class FileSinkMode { append, truncate };

/// Writes output to a file, created (mode 0644) if missing.
class FileSink : public SerialSink {
 public:
  /// Opens `path` for output; fails naming the path.
  [[nodiscard]] static Result<std::unique_ptr<FileSink>> open(const std::string& path,
                                                              FileSinkMode mode);
  void write(std::span<const uint8_t> bytes) override;

 private:
  explicit FileSink(UniqueFd fd) : fd_(std::move(fd)) {}
  std::mutex mutex_;
  UniqueFd fd_;
};

/// Forwards output to another sink (may be null) and keeps the last
/// `keep_bytes` of it in memory, for error reports ("console tail") and tests.
class TeeSink : public SerialSink {
 public:
  /// `next` may be null (keep only); `keep_bytes` is the tail size.
  TeeSink(std::shared_ptr<SerialSink> next, size_t keep_bytes);
  void write(std::span<const uint8_t> bytes) override;
  /// The last keep_bytes (or fewer) bytes written.
  [[nodiscard]] std::string tail() const;
  /// Total bytes ever written.
  [[nodiscard]] uint64_t total_bytes() const;

 private:
  std::shared_ptr<SerialSink> next_;
  size_t keep_;
  mutable std::mutex mutex_;
  std::string buffer_;
  uint64_t total_ = 0;
};

/// Console on a unix stream socket: listens on a path, serves one client at a
/// time (others wait in the backlog), streams output to it, and feeds what
/// the client sends into the UART. Output produced while no client is
/// connected (or while the client is slow) is buffered, up to kBufferLimit
/// bytes keeping the newest, and replayed when a client connects.
class UnixSocketConsole : public SerialSink {
 public:
  /// Output kept while no client reads it.
  static constexpr size_t kBufferLimit = 64 * 1024;

  /// Binds and listens on `path`. A stale socket file (nobody accepting) is
  /// replaced; a live one or a non-socket file is an error.
  [[nodiscard]] static Result<std::unique_ptr<UnixSocketConsole>> listen(const std::string& path);
  ~UnixSocketConsole() override;

  /// Starts the accept/IO thread; client input goes to `input`.
  void start(SerialInputHandler input);
  /// Stops the thread, disconnects the client, removes the socket file.
  /// Idempotent.
  void stop();
  void write(std::span<const uint8_t> bytes) override;
  /// True while a client is connected.
  [[nodiscard]] bool client_connected() const;
  /// The socket path.
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  UnixSocketConsole(std::string path, UniqueFd listen_fd, UniqueFd wake_fd);
  void run(SerialInputHandler input);
  void accept_client();
  void disconnect_client();
  /// Sends buffered output to the client as far as it accepts (lock held).
  void flush_locked();
  void buffer_locked(std::span<const uint8_t> bytes);
  void wake();

  std::string path_;
  UniqueFd listen_fd_;
  UniqueFd wake_fd_;  ///< eventfd: stop requests and "output pending"
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mutex_;  ///< guards client_fd_ and pending_
  UniqueFd client_fd_;
  std::string pending_;
};

/// Reads host input from an fd (not owned; usually stdin) on its own thread
/// and feeds it to the UART, until EOF or stop().
class FdInputReader {
 public:
  /// Starts reading `fd`.
  [[nodiscard]] static Result<std::unique_ptr<FdInputReader>> start(int fd,
                                                                    SerialInputHandler input);
  ~FdInputReader();
  /// Stops and joins the thread. Idempotent.
  void stop();

 private:
  FdInputReader(int fd, UniqueFd wake_fd) : fd_(fd), wake_fd_(std::move(wake_fd)) {}
  void run(SerialInputHandler input);

  int fd_;
  UniqueFd wake_fd_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

/// True when stdin is /dev/null (or closed): no input reader is needed.
[[nodiscard]] bool stdin_is_dev_null();

/// Delivers all of `bytes` to `input`, waiting in 10 ms steps while the UART
/// FIFO is full; gives up when `stopping` becomes true. Returns bytes delivered.
size_t deliver_input(const SerialInputHandler& input, std::span<const uint8_t> bytes,
                     const std::atomic<bool>& stopping);

}  // namespace godwit
