// godwitctl's HTTP client: one request/response exchange with the VMM's REST
// API over its unix socket (Boost.Beast), with a deadline.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/result.h"

namespace godwit::ctl {

/// A response as received: status, content type and raw body.
struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

/// Talks to one API socket. Each request uses a fresh connection, so a client can be reused
/// across polls even if the VMM restarted in between.
class ApiClient {
 public:
  /// A client for the API socket at `socket_path`; every exchange must finish within `timeout`.
  explicit ApiClient(std::string socket_path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(120));

  /// Sends `method target` with an optional JSON `body`. Any HTTP status is a success here;
  /// an error means the VMM could not be reached or the exchange broke off. A connect failure
  /// reads "cannot connect to PATH: REASON — is godwit running with --api-sock PATH?".
  [[nodiscard]] Result<HttpReply> request(std::string_view method, std::string_view target,
                                          std::string body = {});

  /// The socket path this client talks to.
  [[nodiscard]] const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace godwit::ctl
