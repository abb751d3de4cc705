// HttpSession: the per-connection read -> dispatch -> write loop.
#include "vmm/api/http_session.h"

#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "base/log.h"

namespace godwit::api {

namespace http = boost::beast::http;
using boost::system::error_code;

namespace {
/// True for errors produced by Beast's HTTP parser (as opposed to socket errors).
bool is_http_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

/// Builds the library-independent Request from a parsed Beast request.
Request to_request(const http::request<http::string_body>& message) {
  Request request;
  request.method = std::string(message.method_string());
  std::string_view target(message.target().data(), message.target().size());
  size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = parse_query(target.substr(question + 1));
  request.body = message.body();
  return request;
}
}  // namespace

HttpSession::HttpSession(boost::asio::local::stream_protocol::socket socket, const Router& router,
                         const HttpServerOptions& options, SessionRegistry& registry)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      router_(router),
      options_(options),
      registry_(registry) {
  registry_.sessions.insert(this);
}

HttpSession::~HttpSession() { registry_.sessions.erase(this); }

void HttpSession::start() { read_request(); }

void HttpSession::close() {
  error_code ignored;
  timer_.cancel(ignored);
  socket_.close(ignored);
}

void HttpSession::arm_timeout() {
  uint64_t generation = ++timeout_generation_;
  timer_.expires_after(options_.io_timeout);
  timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
    if (ec || generation != self->timeout_generation_) return;
    log::debug("API client timed out; closing its connection");
    self->close();
  });
}

void HttpSession::disarm_timeout() {
  ++timeout_generation_;
  error_code ignored;
  timer_.cancel(ignored);
}

void HttpSession::read_request() {
  parser_.emplace();
  parser_->body_limit(options_.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
  arm_timeout();
  http::async_read(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](error_code ec, size_t /*bytes*/) { self->on_request_read(ec); });
}

void HttpSession::on_request_read(error_code ec) {
  disarm_timeout();
  if (ec) {
    // The client went away (or timed out): nobody to answer.
    if (!is_http_parse_error(ec) || ec == http::error::end_of_stream ||
        ec == http::error::partial_message) {
      if (ec != boost::asio::error::operation_aborted && ec != http::error::end_of_stream) {
        log::debug("API connection read ended: " + ec.message());
      }
      close();
      return;
    }
    // Unusable request: answer once, then close (the stream cannot be resynchronised).
    if (ec == http::error::body_limit) {
      send(Response::error(
               413, "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes"),
           11, false);
    } else if (ec == http::error::header_limit) {
      send(Response::error(431, "request header exceeds " +
                                    std::to_string(options_.max_header_bytes) + " bytes"),
           11, false);
    } else {
      send(Response::error(400, "malformed HTTP request: " + ec.message()), 11, false);
    }
    return;
  }

  const auto& message = parser_->get();
  Request request = to_request(message);
  Response response = router_.dispatch(request);
  send(std::move(response), message.version(), message.keep_alive());
}

void HttpSession::send(Response response, unsigned http_version, bool keep_alive) {
  // A handler bug must not produce an unsendable status line.
  if (response.status < 100 || response.status > 599) {
    response = Response::error(
        500, "handler returned invalid HTTP status " + std::to_string(response.status));
  }
  response_ = std::make_unique<HttpResponse>();
  response_->version(http_version);
  response_->result(static_cast<unsigned>(response.status));
  response_->set(http::field::server, "godwit");
  std::string body = std::move(response).take_body();
  if (!body.empty() || response.status != 204) {
    if (!response.content_type.empty()) {
      response_->set(http::field::content_type, response.content_type);
    }
  }
  for (const auto& [name, value] : response.headers) response_->set(name, value);
  response_->body() = std::move(body);
  response_->keep_alive(keep_alive);
  response_->prepare_payload();
  arm_timeout();
  http::async_write(socket_, *response_,
                    [self = shared_from_this(), keep_alive](error_code ec, size_t /*bytes*/) {
                      self->on_response_written(ec, keep_alive);
                    });
}

void HttpSession::on_response_written(error_code ec, bool keep_alive) {
  disarm_timeout();
  response_.reset();
  if (ec || !keep_alive) {
    error_code ignored;
    socket_.shutdown(boost::asio::local::stream_protocol::socket::shutdown_send, ignored);
    close();
    return;
  }
  read_request();
}

}  // namespace godwit::api
