// ApiClient: connect, write the request and read the response under one
// deadline (asynchronous operations driven by io_context::run_for).
#include "tools/godwitctl/api_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace godwit::ctl {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using stream_protocol = asio::local::stream_protocol;
using boost::system::error_code;

namespace {
/// Responses may carry up to 256 MiB of guest memory plus headers.
constexpr uint64_t kMaxReplyBytes = uint64_t{512} << 20;
}  // namespace

ApiClient::ApiClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<HttpReply> ApiClient::request(std::string_view method, std::string_view target,
                                     std::string body) {
  http::verb verb = http::string_to_verb({method.data(), method.size()});
  if (verb == http::verb::unknown) return fail("unknown HTTP method " + std::string(method));
  std::string what = std::string(method) + " " + std::string(target) + " on " + socket_path_;
  try {
    asio::io_context io;
    stream_protocol::socket socket(io);
    error_code ec;
    socket.connect(stream_protocol::endpoint(socket_path_), ec);
    if (ec) {
      return fail("cannot connect to " + socket_path_ + ": " + ec.message() +
                      " \u2014 is godwit running with --api-sock " + socket_path_ + "?",
                  ec.value());
    }

    http::request<http::string_body> message{verb, std::string(target), 11};
    message.set(http::field::host, "localhost");
    message.set(http::field::user_agent, "godwitctl");
    if (!body.empty()) message.set(http::field::content_type, "application/json");
    message.body() = std::move(body);
    message.keep_alive(false);
    message.prepare_payload();

    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxReplyBytes);
    std::optional<error_code> outcome;
    http::async_write(socket, message, [&](error_code write_ec, size_t) {
      if (write_ec) {
        outcome = write_ec;
        return;
      }
      http::async_read(socket, buffer, parser,
                       [&](error_code read_ec, size_t) { outcome = read_ec; });
    });
    io.run_for(timeout_);
    if (!outcome) {
      return fail(what + ": no answer within " + std::to_string(timeout_.count() / 1000) + " s");
    }
    if (*outcome) return fail(what + ": " + outcome->message(), outcome->value());

    const auto& response = parser.get();
    HttpReply reply;
    reply.status = static_cast<int>(response.result_int());
    reply.content_type = std::string(response[http::field::content_type]);
    reply.body = response.body();
    return reply;
  } catch (const std::exception& e) {
    return fail(what + ": " + e.what());
  }
}

}  // namespace godwit::ctl
