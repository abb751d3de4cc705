// The request and response values that API handlers see: plain data with no
// dependency on the HTTP library, so routes are testable without a socket.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace godwit::api {

/// One parsed HTTP request as handed to a route handler.
struct Request {
  std::string method;                        ///< "GET", "PUT", ... as sent by the client
  std::string path;                          ///< target without the query string, e.g. "/vm"
  std::map<std::string, std::string> query;  ///< percent-decoded query parameters
  std::string body;                          ///< raw request body (may be empty)

  /// Parses the body as JSON; the error names the parse failure (an empty body is an error).
  [[nodiscard]] Result<nlohmann::json> json() const;
};

/// One HTTP response: a JSON document, raw bytes with a content type, or no body (204).
struct Response {
  int status = 200;
  nlohmann::json body;  ///< sent when content_type is application/json
  std::string raw;      ///< sent as-is for any other content type
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers (e.g. Allow)

  /// A JSON response.
  [[nodiscard]] static Response json(int status, nlohmann::json body);
  /// An error response with body {"error": message}.
  [[nodiscard]] static Response error(int status, std::string message);
  /// A raw byte response (e.g. application/octet-stream) with status 200.
  [[nodiscard]] static Response bytes(std::string data,
                                      std::string content_type = "application/octet-stream");
  /// A raw byte response from a byte vector.
  [[nodiscard]] static Response bytes(std::span<const uint8_t> data,
                                      std::string content_type = "application/octet-stream");
  /// An empty 204 No Content response.
  [[nodiscard]] static Response no_content();

  /// The bytes that go on the wire as the message body.
  [[nodiscard]] std::string serialized_body() const;
  /// Like serialized_body(), but moves raw bytes out instead of copying them.
  [[nodiscard]] std::string take_body() &&;
};

/// Splits "a=1&b=0x2" into a map, percent-decoding keys and values ('+' means space).
[[nodiscard]] std::map<std::string, std::string> parse_query(std::string_view query);

/// Decodes %XX escapes and '+'; malformed escapes are kept literally.
[[nodiscard]] std::string percent_decode(std::string_view text);

}  // namespace godwit::api
