// Migration transports, on loopback and unix sockets only: address parsing,
// a 64 MiB gathered-write round trip over TCP, unix sockets and their path
// rules, refused connects, accept / wait_readable timeouts, close() and
// shutdown() from another thread waking a blocked accept / read, and writes
// to a closed peer failing with an error instead of SIGPIPE.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "migration/crc32c.h"
#include "migration/transport.h"

namespace godwit::migration {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;

std::string error_of(const auto& result) {
  return result ? std::string("(succeeded)") : result.error().message;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A fresh directory under /tmp, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/godwit-transport-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

Listener listen_or_die(const std::string& text) {
  auto address = parse_address(text);
  EXPECT_TRUE(address) << error_of(address);
  auto listener = Listener::listen(*address);
  EXPECT_TRUE(listener) << error_of(listener);
  return std::move(*listener);
}

/// A connected pair over TCP loopback: {client, server}.
std::pair<Connection, Connection> tcp_pair() {
  Listener l = listen_or_die("tcp:127.0.0.1:0");
  auto client = connect_to(l.bound(), 5000ms);
  EXPECT_TRUE(client) << error_of(client);
  auto server = l.accept(5000ms);
  EXPECT_TRUE(server) << error_of(server);
  return {std::move(*client), std::move(*server)};
}

// ---------------------------------------------------------------------------
// Addresses

TEST(ParseAddress, GoodInputs) {
  struct Case {
    const char* text;
    Address::Kind kind;
    const char* host;
    uint16_t port;
    const char* path;
  };
  const Case cases[] = {
      {"tcp:127.0.0.1:4444", Address::Kind::tcp, "127.0.0.1", 4444, ""},
      {"tcp:localhost:0", Address::Kind::tcp, "localhost", 0, ""},
      {"tcp:[::1]:65535", Address::Kind::tcp, "::1", 65535, ""},
      {"tcp:[fe80::1%eth0]:1", Address::Kind::tcp, "fe80::1%eth0", 1, ""},
      {"tcp:0.0.0.0:00080", Address::Kind::tcp, "0.0.0.0", 80, ""},
      {"unix:/tmp/m.sock", Address::Kind::unix_socket, "", 0, "/tmp/m.sock"},
      {"unix:relative:with:colons", Address::Kind::unix_socket, "", 0, "relative:with:colons"},
  };
  for (const auto& c : cases) {
    auto a = parse_address(c.text);
    ASSERT_TRUE(a) << c.text << ": " << error_of(a);
    EXPECT_EQ(a->kind, c.kind) << c.text;
    EXPECT_EQ(a->host, c.host) << c.text;
    EXPECT_EQ(a->port, c.port) << c.text;
    EXPECT_EQ(a->path, c.path) << c.text;
  }
  EXPECT_EQ(parse_address("tcp:[::1]:4444")->text(), "tcp:[::1]:4444");
  EXPECT_EQ(parse_address("tcp:host:007")->text(), "tcp:host:7");
  EXPECT_EQ(parse_address("unix:/x")->text(), "unix:/x");
  std::string longest = "unix:/" + std::string(106, 'p');  // 107-byte path
  EXPECT_TRUE(parse_address(longest)) << error_of(parse_address(longest));
}

TEST(ParseAddress, BadInputsNameTheBadPart) {
  const std::pair<std::string, std::string> cases[] = {
      {"tcp:host", "tcp:host: missing port"},
      {"tcp:host:", "tcp:host:: missing port"},
      {"tcp:", "tcp:: missing host and port"},
      {"tcp::4444", "tcp::4444: missing host"},
      {"tcp:host:70000", "tcp:host:70000: port 70000 out of range (0..65535)"},
      {"tcp:host:99999999999", "port '99999999999' is not a number"},
      {"tcp:host:-1", "port '-1' is not a number"},
      {"tcp:host:44a", "port '44a' is not a number"},
      {"tcp:::1:4444", "an IPv6 host must be written in brackets"},
      {"tcp:[::1", "missing ']' after the IPv6 host"},
      {"tcp:[::1]", "tcp:[::1]: missing port"},
      {"tcp:[::1]4444", "expected ':' after ']'"},
      {"tcp:[]:4444", "empty host between '[' and ']'"},
      {"unix:", "unix:: missing socket path"},
      {"unix:/" + std::string(107, 'p'), "socket path of 108 bytes exceeds the 107-byte limit"},
      {"udp:host:1", "udp:host:1: unknown transport 'udp'"},
      {"", "unknown transport ''"},
      {"/tmp/sock", "unknown transport '/tmp/sock'"},
  };
  for (const auto& [text, expected] : cases) {
    auto a = parse_address(text);
    EXPECT_TRUE(contains(error_of(a), expected)) << text << " -> " << error_of(a);
  }
}

// ---------------------------------------------------------------------------
// TCP

TEST(Tcp, PortZeroPicksARealPort) {
  Listener l = listen_or_die("tcp:127.0.0.1:0");
  EXPECT_NE(l.bound().port, 0);
  EXPECT_EQ(l.bound().host, "127.0.0.1");
}

TEST(Tcp, GatheredWritesOf64MiBArriveIntact) {
  auto [client, server] = tcp_pair();
  // 64 MiB in parts of uneven sizes (more parts than IOV_MAX per call, so
  // the writer must window them and survive short writes).
  constexpr size_t kTotal = 64u << 20;
  Bytes data(kTotal);
  for (size_t i = 0; i < kTotal; ++i) data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  std::vector<iovec> parts;
  for (size_t at = 0, n = 1; at < kTotal; at += n, n = n * 7 % 65521 + 1) {
    n = std::min(n, kTotal - at);
    parts.push_back({data.data() + at, n});
  }
  ASSERT_GT(parts.size(), 1024u);

  Bytes received(kTotal);
  Result<void> read_result;
  std::thread reader([&] {
    // Several read_exact calls of odd sizes, as a frame reader would do.
    size_t at = 0;
    while (at < kTotal && read_result) {
      size_t n = std::min<size_t>(kTotal - at, 1000003);
      read_result = server.read_exact(std::span(received).subspan(at, n));
      at += n;
    }
  });
  auto written = client.write_all(parts);
  reader.join();
  ASSERT_TRUE(written) << error_of(written);
  ASSERT_TRUE(read_result) << error_of(read_result);
  EXPECT_EQ(crc32c(received), crc32c(data));
  EXPECT_TRUE(received == data);
}

TEST(Tcp, BothDirectionsOfOneConnection) {
  auto [client, server] = tcp_pair();
  Bytes ping = {1, 2, 3};
  Bytes pong = {4, 5};
  ASSERT_TRUE(client.write_all(std::span<const uint8_t>(ping)));
  Bytes got(3);
  ASSERT_TRUE(server.read_exact(got));
  EXPECT_EQ(got, ping);
  ASSERT_TRUE(server.write_all(std::span<const uint8_t>(pong)));
  got.resize(2);
  ASSERT_TRUE(client.read_exact(got));
  EXPECT_EQ(got, pong);
  EXPECT_TRUE(contains(server.peer(), "tcp:127.0.0.1:")) << server.peer();
}

TEST(Tcp, ConnectToAClosedPortIsRefused) {
  Address closed;
  {
    Listener l = listen_or_die("tcp:127.0.0.1:0");
    closed = l.bound();
  }
  auto c = connect_to(closed, 5000ms);
  EXPECT_TRUE(contains(error_of(c), closed.text() + ": connect: Connection refused"))
      << error_of(c);
}

/// Connects to `address` (whose listener never accepts) until the backlog is
/// full and an attempt times out; returns that attempt's error.
std::string connect_until_timeout(const Address& address) {
  std::vector<Connection> queued;  // kept open so they hold their backlog slots
  for (int i = 0; i < 200; ++i) {
    auto c = connect_to(address, 200ms);
    if (!c) return c.error().message;
    queued.push_back(std::move(*c));
  }
  return "(200 connects all succeeded)";
}

TEST(Tcp, ConnectTimesOutWhenTheListenerBacklogIsFull) {
  // Only loopback: a listener that never accepts drops SYNs once its accept
  // queue is full, so a later connect waits for the whole timeout.
  Listener l = listen_or_die("tcp:127.0.0.1:0");
  EXPECT_EQ(connect_until_timeout(l.bound()),
            l.bound().text() + ": connect timed out after 200 ms");
}

TEST(Tcp, AcceptTimesOut) {
  Listener l = listen_or_die("tcp:127.0.0.1:0");
  auto c = l.accept(50ms);
  EXPECT_EQ(error_of(c), l.bound().text() + ": accept timed out after 50 ms");
}

TEST(Tcp, CloseFromAnotherThreadWakesABlockedAccept) {
  Listener l = listen_or_die("tcp:127.0.0.1:0");
  Result<Connection> accepted = fail("not run");
  // A generous timeout, so a close() that fails to wake accept shows up as
  // "timed out" instead of a hung test.
  std::thread t([&] { accepted = l.accept(30000ms); });
  std::this_thread::sleep_for(100ms);
  l.close();
  t.join();
  EXPECT_EQ(error_of(accepted), l.bound().text() + ": listener closed");
  // Later accepts fail at once, and the port no longer takes connections.
  EXPECT_EQ(error_of(l.accept(-1ms)), l.bound().text() + ": listener closed");
  EXPECT_TRUE(contains(error_of(connect_to(l.bound(), 5000ms)), "refused"));
}

TEST(Tcp, WaitReadable) {
  auto [client, server] = tcp_pair();
  auto idle = server.wait_readable(20ms);
  ASSERT_TRUE(idle) << error_of(idle);
  EXPECT_FALSE(*idle);
  Bytes one = {7};
  ASSERT_TRUE(client.write_all(std::span<const uint8_t>(one)));
  auto ready = server.wait_readable(-1ms);
  ASSERT_TRUE(ready);
  EXPECT_TRUE(*ready);
  ASSERT_TRUE(server.read_exact(one));
  client = Connection();  // peer closes: readable, and the read says so
  ready = server.wait_readable(5000ms);
  ASSERT_TRUE(ready);
  EXPECT_TRUE(*ready);
  EXPECT_EQ(error_of(server.read_exact(one)), server.peer() + ": connection closed by peer");
}

TEST(Tcp, ShutdownFromAnotherThreadWakesABlockedRead) {
  auto [client, server] = tcp_pair();
  Result<void> read_result;
  Bytes buffer(16);
  std::thread t([&] { read_result = server.read_exact(buffer); });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(server.is_shut_down());
  server.shutdown();
  server.shutdown();  // idempotent
  t.join();
  EXPECT_TRUE(server.is_shut_down());
  EXPECT_EQ(error_of(read_result), server.peer() + ": connection shut down");
  // Writes fail too, and the peer sees the connection end.
  Bytes one = {1};
  EXPECT_FALSE(server.write_all(std::span<const uint8_t>(one)));
  EXPECT_EQ(error_of(client.read_exact(one)), client.peer() + ": connection closed by peer");
}

TEST(Tcp, ShutdownWakesAWriterBlockedOnAFullBuffer) {
  auto [client, server] = tcp_pair();
  Bytes big(64u << 20);  // far more than the socket buffers hold; nobody reads
  Result<void> write_result;
  std::thread t([&] { write_result = client.write_all(std::span<const uint8_t>(big)); });
  std::this_thread::sleep_for(100ms);
  client.shutdown();
  t.join();
  EXPECT_TRUE(contains(error_of(write_result), "connection shut down")) << error_of(write_result);
}

TEST(Tcp, WriteToAPeerThatClosedFailsWithoutSigpipe) {
  auto [client, server] = tcp_pair();
  server = Connection();
  // The first writes may still be accepted (the RST arrives after them);
  // SIGPIPE would kill this test process.
  Bytes chunk(1 << 20);
  Result<void> w;
  for (int i = 0; i < 100 && w; ++i) w = client.write_all(std::span<const uint8_t>(chunk));
  ASSERT_FALSE(w);
  EXPECT_TRUE(contains(error_of(w), "connection closed by peer") ||
              contains(error_of(w), "connection reset by peer"))
      << error_of(w);
}

TEST(Tcp, ReadEofMidwaySaysHowFarItGot) {
  auto [client, server] = tcp_pair();
  Bytes two = {1, 2};
  ASSERT_TRUE(client.write_all(std::span<const uint8_t>(two)));
  client = Connection();
  Bytes eight(8);
  EXPECT_EQ(error_of(server.read_exact(eight)),
            server.peer() + ": connection closed by peer after 2 of 8 bytes");
}

// ---------------------------------------------------------------------------
// Unix sockets

TEST(Unix, RoundTripAndTheSocketFileIsRemoved) {
  TempDir dir;
  std::string path = dir.file("m.sock");
  {
    Listener l = listen_or_die("unix:" + path);
    EXPECT_TRUE(std::filesystem::exists(path));
    auto client = connect_to(l.bound(), 5000ms);
    ASSERT_TRUE(client) << error_of(client);
    auto server = l.accept(5000ms);
    ASSERT_TRUE(server) << error_of(server);
    Bytes hello = {'h', 'i'};
    iovec parts[2] = {{hello.data(), 1}, {hello.data() + 1, 1}};
    ASSERT_TRUE(client->write_all(parts));
    Bytes got(2);
    ASSERT_TRUE(server->read_exact(got));
    EXPECT_EQ(got, hello);
    ASSERT_TRUE(server->write_all(std::span<const uint8_t>(hello)));
    ASSERT_TRUE(client->read_exact(got));
    EXPECT_EQ(got, hello);
    EXPECT_EQ(client->peer(), "unix:" + path);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Unix, AnExistingPathIsRefusedAndNotUnlinked) {
  TempDir dir;
  std::string path = dir.file("taken");
  std::ofstream(path) << "not a socket";
  auto address = parse_address("unix:" + path);
  ASSERT_TRUE(address);
  {
    auto l = Listener::listen(*address);
    EXPECT_EQ(error_of(l), "unix:" + path + ": path already exists; not replacing it");
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "not a socket");
}

TEST(Unix, AMovedListenerUnlinksOnce) {
  TempDir dir;
  std::string path = dir.file("moved.sock");
  std::optional<Listener> outer;
  {
    Listener l = listen_or_die("unix:" + path);
    outer.emplace(std::move(l));
  }  // the moved-from listener must not remove the file
  EXPECT_TRUE(std::filesystem::exists(path));
  outer.reset();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Unix, ConnectTimesOutWhenTheListenerBacklogIsFull) {
  // A full unix backlog answers a non-blocking connect with EAGAIN; the
  // connect keeps trying until its deadline.
  TempDir dir;
  Listener l = listen_or_die("unix:" + dir.file("full.sock"));
  EXPECT_EQ(connect_until_timeout(l.bound()),
            l.bound().text() + ": connect timed out after 200 ms");
}

TEST(Unix, ConnectWithoutAListenerFails) {
  TempDir dir;
  auto address = parse_address("unix:" + dir.file("nobody"));
  auto c = connect_to(*address, 1000ms);
  EXPECT_TRUE(contains(error_of(c), ": connect: No such file or directory")) << error_of(c);
}

TEST(Unix, WriteToAClosedSocketpairPeerFailsWithoutSigpipe) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  Connection a(UniqueFd(fds[0]), "a");
  { Connection b(UniqueFd(fds[1]), "b"); }
  Bytes one = {1};
  EXPECT_EQ(error_of(a.write_all(std::span<const uint8_t>(one))), "a: connection closed by peer");
}

TEST(Connection, MoveKeepsTheSocketAndTheShutdownFlag) {
  auto [client, server] = tcp_pair();
  int fd = client.fd();
  client.shutdown();
  Connection moved(std::move(client));
  EXPECT_EQ(moved.fd(), fd);
  EXPECT_TRUE(moved.is_shut_down());
  EXPECT_FALSE(client.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
}

}  // namespace
}  // namespace godwit::migration
