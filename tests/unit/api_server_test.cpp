// HttpServer over a real unix socket: routing over the wire, malformed input,
// limits, keep-alive, concurrency, timeouts, socket file handling and stop().
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "api_test_support.h"
#include "vmm/api/http_server.h"

namespace godwit::api {
namespace {

using test::connect_raw;
using test::http_request;
using test::peer_closed;
using test::read_until_closed;
using test::send_all;
using test::TempSocketPath;
using test::TestHttpClient;

/// Routes used by these tests: a counter, a JSON echo and a thrower.
Router test_router() {
  Router router;
  auto hits = std::make_shared<int>(0);
  router.get("/ping", [hits](const Request& r) {
    return Response::json(200, {{"pong", ++*hits}, {"query", r.query}});
  });
  router.put("/echo", [](const Request& r) {
    auto body = r.json();
    if (!body) return Response::error(400, body.error().message);
    return Response::json(200, {{"echo", *body}});
  });
  router.get("/throw", [](const Request&) -> Response { throw std::runtime_error("handler bug"); });
  router.get("/bad-status", [](const Request&) { return Response::json(42, {}); });
  router.get("/blob", [](const Request&) { return Response::bytes(std::string("\0\1\2", 3)); });
  return router;
}

std::unique_ptr<HttpServer> start_server(const std::string& path, HttpServerOptions options = {}) {
  auto server = HttpServer::start(path, test_router(), options);
  EXPECT_TRUE(server.has_value()) << (server ? "" : server.error().message);
  return server ? std::move(*server) : nullptr;
}

TEST(ApiServer, ServesRoutesWithQueryStrings) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  auto reply = http_request(sock.path(), "GET", "/ping?a=1&b=x%2Fy");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "application/json");
  EXPECT_EQ(reply.json()["query"]["a"], "1");
  EXPECT_EQ(reply.json()["query"]["b"], "x/y");
}

TEST(ApiServer, UnknownPathWrongMethodAndMalformedJson) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);

  auto not_found = http_request(sock.path(), "GET", "/x");
  EXPECT_EQ(not_found.status, 404);
  EXPECT_EQ(not_found.json()["error"], "unknown path /x");

  auto wrong_method = http_request(sock.path(), "POST", "/ping");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.allow, "GET");

  auto malformed = http_request(sock.path(), "PUT", "/echo", "{\"a\": [1, 2");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(malformed.json()["error"].get<std::string>().find("parse error"), std::string::npos);

  auto echoed = http_request(sock.path(), "PUT", "/echo", R"({"a": [1, 2]})");
  EXPECT_EQ(echoed.status, 200);
  EXPECT_EQ(echoed.json()["echo"]["a"][1], 2);
}

TEST(ApiServer, ThrowingHandlerGives500AndServerKeepsRunning) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  auto reply = http_request(sock.path(), "GET", "/throw");
  EXPECT_EQ(reply.status, 500);
  EXPECT_NE(reply.json()["error"].get<std::string>().find("handler bug"), std::string::npos);
  EXPECT_EQ(http_request(sock.path(), "GET", "/ping").status, 200);
}

TEST(ApiServer, InvalidHandlerStatusBecomes500AndRawBytesPassThrough) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  auto bad = http_request(sock.path(), "GET", "/bad-status");
  EXPECT_EQ(bad.status, 500);
  EXPECT_EQ(bad.json()["error"], "handler returned invalid HTTP status 42");
  auto blob = http_request(sock.path(), "GET", "/blob");
  EXPECT_EQ(blob.status, 200);
  EXPECT_EQ(blob.content_type, "application/octet-stream");
  EXPECT_EQ(blob.body, std::string("\0\1\2", 3));
}

TEST(ApiServer, GarbageBytesGet400AndTheNextClientIsServed) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  for (const std::string& garbage :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n"),
        std::string("GET /ping HTTP/9.Q\r\n\r\n"),
        std::string("GET /ping HTTP/1.1\r\nContent-Length: banana\r\n\r\n"),
        std::string("GET /ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")}) {
    auto fd = connect_raw(sock.path());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(send_all(fd.get(), garbage));
    std::string answer = read_until_closed(fd.get());
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
    EXPECT_NE(answer.find("malformed HTTP request"), std::string::npos) << answer;
  }
  // A client that connects, sends half a request line and hangs up.
  {
    auto fd = connect_raw(sock.path());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(send_all(fd.get(), "GET /pi"));
  }
  EXPECT_EQ(http_request(sock.path(), "GET", "/ping").status, 200);
}

TEST(ApiServer, OversizedBodyIs413) {
  TempSocketPath sock;
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  auto server = start_server(sock.path(), options);
  ASSERT_TRUE(server);
  std::string big = "\"" + std::string(2000, 'a') + "\"";
  auto reply = http_request(sock.path(), "PUT", "/echo", big);
  EXPECT_EQ(reply.status, 413);
  EXPECT_NE(reply.json()["error"].get<std::string>().find("1024"), std::string::npos);
  std::string fits = "\"" + std::string(1000, 'a') + "\"";
  EXPECT_EQ(http_request(sock.path(), "PUT", "/echo", fits).status, 200);
}

TEST(ApiServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  TestHttpClient client(sock.path());
  ASSERT_TRUE(client.connected());
  auto first = client.request("GET", "/ping");
  auto second = client.request("GET", "/x");
  auto third = client.request("GET", "/ping");
  EXPECT_EQ(first.status, 200);
  EXPECT_TRUE(first.keep_alive);
  EXPECT_EQ(second.status, 404);
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(third.json()["pong"].get<int>(), first.json()["pong"].get<int>() + 1);
}

TEST(ApiServer, ConcurrentClientsAreServedWhileOneStalls) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  // A stalled client holding a half-sent request must not block anyone.
  auto stalled = connect_raw(sock.path());
  ASSERT_TRUE(stalled);
  ASSERT_TRUE(send_all(stalled.get(), "PUT /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"));

  constexpr int kThreads = 8;
  constexpr int kRequests = 25;
  std::vector<int> ok(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TestHttpClient client(sock.path());
      for (int i = 0; i < kRequests; ++i) {
        nlohmann::json value = {{"thread", t}, {"i", i}};
        auto reply = client.request("PUT", "/echo", value.dump());
        if (reply.status == 200 && reply.json()["echo"] == value) ++ok[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(ok[t], kRequests) << "thread " << t;
}

TEST(ApiServer, StalledClientIsDisconnectedAfterTheTimeout) {
  TempSocketPath sock;
  HttpServerOptions options;
  options.io_timeout = std::chrono::milliseconds(200);
  auto server = start_server(sock.path(), options);
  ASSERT_TRUE(server);
  auto idle = connect_raw(sock.path());
  ASSERT_TRUE(idle);
  ASSERT_TRUE(send_all(idle.get(), "GET /ping HTTP/1.1\r\n"));
  EXPECT_TRUE(peer_closed(idle.get()));
  EXPECT_EQ(http_request(sock.path(), "GET", "/ping").status, 200);
}

TEST(ApiServer, ConnectionsBeyondTheLimitAreClosed) {
  TempSocketPath sock;
  HttpServerOptions options;
  options.max_connections = 1;
  auto server = start_server(sock.path(), options);
  ASSERT_TRUE(server);
  TestHttpClient first(sock.path());
  ASSERT_EQ(first.request("GET", "/ping").status, 200);  // its session now exists
  auto second = connect_raw(sock.path());
  ASSERT_TRUE(second);
  send_all(second.get(), "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_until_closed(second.get()), "");
  EXPECT_EQ(first.request("GET", "/ping").status, 200);
}

TEST(ApiServer, StaleSocketFileIsReplaced) {
  TempSocketPath sock;
  {
    // Leave a socket file behind with nobody listening on it.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.path().c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  struct stat st {};
  ASSERT_EQ(::lstat(sock.path().c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  EXPECT_EQ(http_request(sock.path(), "GET", "/ping").status, 200);
}

TEST(ApiServer, LiveSocketIsRefused) {
  TempSocketPath sock;
  auto first = start_server(sock.path());
  ASSERT_TRUE(first);
  auto second = HttpServer::start(sock.path(), test_router());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().message, "API socket " + sock.path() + " already in use");
  EXPECT_EQ(http_request(sock.path(), "GET", "/ping").status, 200);  // first still serves
}

TEST(ApiServer, RegularFileInTheWayIsRefused) {
  TempSocketPath sock;
  std::ofstream(sock.path()) << "not a socket";
  auto server = HttpServer::start(sock.path(), test_router());
  ASSERT_FALSE(server.has_value());
  EXPECT_NE(server.error().message.find("is not a socket"), std::string::npos);
}

TEST(ApiServer, TooLongPathIsRefused) {
  auto server = HttpServer::start("/tmp/" + std::string(200, 'x'), test_router());
  ASSERT_FALSE(server.has_value());
  EXPECT_NE(server.error().message.find("longer than"), std::string::npos);
}

TEST(ApiServer, StopReturnsWithClientsConnectedAndRemovesTheSocket) {
  TempSocketPath sock;
  auto server = start_server(sock.path());
  ASSERT_TRUE(server);
  TestHttpClient busy(sock.path());
  ASSERT_EQ(busy.request("GET", "/ping").status, 200);
  auto half = connect_raw(sock.path());
  ASSERT_TRUE(half);
  ASSERT_TRUE(send_all(half.get(), "GET /ping HTTP/1.1\r\n"));

  server->stop();
  EXPECT_TRUE(peer_closed(half.get()));
  EXPECT_EQ(busy.request("GET", "/ping").status, 0);
  struct stat st {};
  EXPECT_NE(::lstat(sock.path().c_str(), &st), 0);
  server->stop();  // idempotent
  // The path is free again for a new server.
  auto again = start_server(sock.path());
  ASSERT_TRUE(again);
  EXPECT_EQ(http_request(sock.path(), "GET", "/ping").status, 200);
}

}  // namespace
}  // namespace godwit::api
