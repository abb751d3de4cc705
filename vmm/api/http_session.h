// One client connection of the API server (internal to vmm/api): reads
// requests with Beast's parser, dispatches them to the Router, writes the
// responses, and enforces the body limit and the I/O timeout.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_set>

#include "vmm/api/http_server.h"
#include "vmm/api/router.h"

namespace godwit::api {

class HttpSession;

/// The live sessions of one server. Touched only on the server thread (or after it has been
/// joined), so it needs no lock.
struct SessionRegistry {
  std::unordered_set<HttpSession*> sessions;
};

/// A connection; owned by the asynchronous operations in flight on it (shared_from_this).
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  /// Takes ownership of an accepted socket; registers itself in `registry`.
  HttpSession(boost::asio::local::stream_protocol::socket socket, const Router& router,
              const HttpServerOptions& options, SessionRegistry& registry);
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;
  ~HttpSession();

  /// Starts reading the first request.
  void start();
  /// Closes the socket; pending operations finish with operation_aborted.
  void close();

 private:
  using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;
  using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

  void read_request();
  void on_request_read(boost::system::error_code ec);
  void send(Response response, unsigned http_version, bool keep_alive);
  void on_response_written(boost::system::error_code ec, bool keep_alive);
  void arm_timeout();
  void disarm_timeout();

  boost::asio::local::stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::unique_ptr<HttpResponse> response_;
  const Router& router_;
  const HttpServerOptions& options_;
  SessionRegistry& registry_;
  uint64_t timeout_generation_ = 0;  // invalidates timer callbacks of earlier operations
};

}  // namespace godwit::api
