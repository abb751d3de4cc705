// Test support for the API server and godwitctl tests: a fake VmControl, a
// temporary socket path, and small HTTP clients (Beast for well-formed
// requests, raw socket writes for malformed ones).
#pragma once

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// GCC 12 reports a false -Wmaybe-uninitialized inside Beast's response parser in the
// sanitizer build; the warning's location is in these headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "vmm/api/vm_control.h"

namespace godwit::test {

/// A VmControl with a run state and a small guest memory filled with a known pattern.
class FakeVm : public api::VmControl {
 public:
  static constexpr uint64_t kMemoryBytes = 64 * 1024;

  FakeVm() : memory_(kMemoryBytes) {
    for (size_t i = 0; i < memory_.size(); ++i) memory_[i] = static_cast<uint8_t>(i * 7 + i / 256);
  }

  nlohmann::json info() override {
    std::lock_guard lock(mutex_);
    return {{"state", state_},
            {"vcpus", 2},
            {"memory",
             {{"size_bytes", kMemoryBytes},
              {"backing", "memfd"},
              {"regions", {{{"gpa", 0}, {"size", kMemoryBytes}}}}}}};
  }
  Result<void> pause() override {
    std::lock_guard lock(mutex_);
    if (state_ != "running") return fail("VM is not running");
    state_ = "paused";
    return {};
  }
  Result<void> resume() override {
    std::lock_guard lock(mutex_);
    if (state_ != "paused") return fail("VM is not paused");
    state_ = "running";
    return {};
  }
  Result<void> shutdown() override {
    std::lock_guard lock(mutex_);
    if (state_ == "shutdown") return api::vm_conflict("VM is already shut down");
    state_ = "shutdown";
    return {};
  }
  Result<std::vector<uint8_t>> read_memory(uint64_t gpa, uint64_t len) override {
    std::lock_guard lock(mutex_);
    if (memory_error_code_ != 0) return fail("memory is unavailable", memory_error_code_);
    if (gpa >= memory_.size() || len > memory_.size() - gpa) {
      return fail("gpa " + std::to_string(gpa) + " len " + std::to_string(len) +
                  " is outside guest memory");
    }
    return std::vector<uint8_t>(memory_.begin() + static_cast<long>(gpa),
                                memory_.begin() + static_cast<long>(gpa + len));
  }

  /// The current run state.
  std::string state() {
    std::lock_guard lock(mutex_);
    return state_;
  }
  /// Makes read_memory fail with this errno (0: succeed again).
  void fail_memory_with(int code) {
    std::lock_guard lock(mutex_);
    memory_error_code_ = code;
  }
  /// The bytes the fake holds at [gpa, gpa + len).
  std::string bytes(uint64_t gpa, uint64_t len) const {
    return std::string(reinterpret_cast<const char*>(memory_.data()) + gpa, len);
  }

 private:
  std::mutex mutex_;
  std::string state_ = "running";
  std::vector<uint8_t> memory_;
  int memory_error_code_ = 0;
};

/// A private temporary directory holding the socket path; removed on destruction.
class TempSocketPath {
 public:
  TempSocketPath() {
    char dir_template[] = "/tmp/godwit-api-test-XXXXXX";
    const char* dir = ::mkdtemp(dir_template);
    dir_ = dir != nullptr ? dir : "/tmp";
    path_ = dir_ + "/api.sock";
  }
  ~TempSocketPath() {
    std::error_code ignored;
    if (dir_ != "/tmp") std::filesystem::remove_all(dir_, ignored);
  }
  /// The socket path (not created).
  const std::string& path() const { return path_; }
  /// The directory the socket lives in.
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string path_;
};

/// A response as seen by a test client.
struct TestReply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string allow;
  bool keep_alive = false;
  /// The body parsed as JSON (discarded value when it is not JSON).
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

/// A keep-alive HTTP client connection using Beast's synchronous API.
class TestHttpClient {
 public:
  explicit TestHttpClient(const std::string& path) : socket_(io_) {
    boost::system::error_code ec;
    socket_.connect(boost::asio::local::stream_protocol::endpoint(path), ec);
    connect_error_ = ec;
  }
  /// Whether connect() succeeded.
  bool connected() const { return !connect_error_; }

  /// Sends one request and reads its response; status 0 when the exchange failed.
  TestReply request(const std::string& method, const std::string& target,
                    const std::string& body = "", bool keep_alive = true) {
    namespace http = boost::beast::http;
    TestReply reply;
    if (connect_error_) return reply;
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    if (req.method() == http::verb::unknown) req.method_string(method);
    req.set(http::field::host, "localhost");
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.keep_alive(keep_alive);
    req.prepare_payload();
    boost::system::error_code ec;
    http::write(socket_, req, ec);
    if (ec) return reply;
    http::response_parser<http::string_body> parser;
    parser.body_limit(uint64_t{1} << 30);
    http::read(socket_, buffer_, parser, ec);
    if (ec) return reply;
    const auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    reply.content_type = std::string(res[http::field::content_type]);
    reply.allow = std::string(res[http::field::allow]);
    reply.keep_alive = res.keep_alive();
    return reply;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::local::stream_protocol::socket socket_;
  boost::beast::flat_buffer buffer_;
  boost::system::error_code connect_error_;
};

/// One request on a fresh connection.
inline TestReply http_request(const std::string& path, const std::string& method,
                              const std::string& target, const std::string& body = "") {
  TestHttpClient client(path);
  return client.request(method, target, body, false);
}

/// A plain connected unix socket for raw bytes; recv gives up after 10 s so a broken server
/// fails the test instead of hanging it.
inline UniqueFd connect_raw(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UniqueFd();
  }
  timeval timeout{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

/// Sends all of `data` (MSG_NOSIGNAL); false on error.
inline bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

/// Reads until EOF, error or timeout; returns what arrived.
inline std::string read_until_closed(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

/// True when the peer closed the connection (recv returns 0 or ECONNRESET) within 10 s.
inline bool peer_closed(int fd) {
  char byte;
  for (;;) {
    ssize_t n = ::recv(fd, &byte, 1, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

}  // namespace godwit::test
