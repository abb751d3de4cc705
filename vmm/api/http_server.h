// The REST API server: HTTP/1.1 over a unix stream socket (Boost.Beast +
// Asio), dispatching to a Router.
//
// Threading: the server owns its io_context and runs it on one thread of its
// own, started by start() and joined by stop(). Every handler runs on that
// thread, one at a time, so handlers need no locking among themselves but must
// return quickly (a long handler delays every other client). stop() stops the
// loop, closes every connection and returns once the thread has finished its
// current handler; it never waits for clients.
//
// Robustness: keep-alive and many concurrent clients; request bodies above
// max_body_bytes get 413; a client that sends nothing or stalls is dropped
// after io_timeout; malformed HTTP gets 400 and the connection is closed; the
// server keeps serving everyone else in every case.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "base/result.h"
#include "vmm/api/router.h"

namespace godwit::api {

/// Limits of the API server.
struct HttpServerOptions {
  size_t max_body_bytes = 1 << 20;     ///< larger request bodies are refused with 413
  size_t max_header_bytes = 16 << 10;  ///< larger request headers are refused with 431
  size_t max_connections = 64;         ///< further connections are closed at once
  /// Time a connection may take to deliver one whole request (including idle time between
  /// keep-alive requests) or to take one response; after that it is closed.
  std::chrono::milliseconds io_timeout{30'000};
};

/// A running API server. Destroying it stops it.
class HttpServer {
 public:
  /// Listens on `socket_path` and starts serving `router` on the server's own thread. A stale
  /// socket file (nobody listening) is replaced; a live one fails with
  /// "API socket PATH already in use".
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> start(const std::string& socket_path,
                                                                 Router router,
                                                                 HttpServerOptions options = {});
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  /// Stops serving, closes all connections, joins the thread and removes the socket file.
  /// Idempotent. Must not be called from a handler (it would wait for itself); such a call is
  /// logged and ignored.
  void stop();

  /// The socket path given to start().
  [[nodiscard]] const std::string& socket_path() const;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace godwit::api
