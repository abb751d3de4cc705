// Console backends: file sink modes, tee tail, the unix socket console
// (buffered replay, streaming, input, stale sockets, clean stop) and the fd
// input reader. Waits use a generous deadline only to avoid hanging on a
// bug; nothing asserts how long anything takes.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "devices/serial.h"
#include "devices/serial_backends.h"

namespace godwit {
namespace {

namespace fs = std::filesystem;

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/godwit-dev-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits (bounded, to fail instead of hang) until `cond` holds.
template <typename Cond>
bool eventually(Cond cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int connect_to(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads from `fd` until `want` bytes arrived or EOF; bounded by a deadline.
std::string read_n(int fd, size_t want) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

TEST(FileSink, TruncateAndAppendModes) {
  TempDir dir;
  std::string path = dir.path + "/console.log";
  {
    auto sink = FileSink::open(path, FileSinkMode::truncate);
    ASSERT_TRUE(sink) << sink.error().message;
    (*sink)->write(bytes_of("first\n"));
  }
  {
    auto sink = FileSink::open(path, FileSinkMode::append);
    ASSERT_TRUE(sink);
    (*sink)->write(bytes_of("second\n"));
  }
  EXPECT_EQ(slurp(path), "first\nsecond\n");
  {
    auto sink = FileSink::open(path, FileSinkMode::truncate);
    ASSERT_TRUE(sink);
    (*sink)->write(bytes_of("third\n"));
  }
  EXPECT_EQ(slurp(path), "third\n");
}

TEST(FileSink, MissingDirectoryFailsNamingPath) {
  auto sink = FileSink::open("/nonexistent-dir/x.log", FileSinkMode::append);
  ASSERT_FALSE(sink);
  EXPECT_NE(sink.error().message.find("/nonexistent-dir/x.log"), std::string::npos);
}

TEST(TeeSink, KeepsTailAndForwards) {
  TempDir dir;
  auto file = FileSink::open(dir.path + "/out", FileSinkMode::truncate);
  ASSERT_TRUE(file);
  TeeSink tee(std::move(*file), 8);
  for (int i = 0; i < 10; ++i) tee.write(bytes_of("0123456789"));
  EXPECT_EQ(tee.tail(), "23456789");
  EXPECT_EQ(tee.total_bytes(), 100u);
  EXPECT_EQ(slurp(dir.path + "/out").size(), 100u);
  TeeSink keep_only(nullptr, 1024);
  keep_only.write(bytes_of("PASS\n"));
  EXPECT_EQ(keep_only.tail(), "PASS\n");
}

TEST(UnixSocketConsole, ReplaysBufferedOutputStreamsAndFeedsInput) {
  TempDir dir;
  std::string path = dir.path + "/console.sock";
  auto console = UnixSocketConsole::listen(path);
  ASSERT_TRUE(console) << console.error().message;
  std::shared_ptr<UnixSocketConsole> sink = std::move(*console);
  Serial uart(nullptr, sink);
  sink->start([&uart](std::span<const uint8_t> b) { return uart.enqueue_input(b); });

  uint8_t thr = 'E';
  uart.write(0, std::span(&thr, 1));  // written before any client connects
  sink->write(bytes_of("arly\n"));

  int client = connect_to(path);
  ASSERT_GE(client, 0);
  EXPECT_EQ(read_n(client, 6), "Early\n");
  ASSERT_TRUE(eventually([&] { return sink->client_connected(); }));
  sink->write(bytes_of("late\n"));
  EXPECT_EQ(read_n(client, 5), "late\n");

  ASSERT_EQ(::write(client, "hi", 2), 2);
  ASSERT_TRUE(eventually([&] { return uart.input_space() == Serial::kInputCapacity - 2; }));
  uint8_t got[2] = {};
  uart.read(0, std::span(got, 1));
  uart.read(0, std::span(got + 1, 1));
  EXPECT_EQ(got[0], 'h');
  EXPECT_EQ(got[1], 'i');

  // A reconnecting client gets what was written while it was away.
  ::close(client);
  ASSERT_TRUE(eventually([&] { return !sink->client_connected(); }));
  sink->write(bytes_of("while away"));
  client = connect_to(path);
  ASSERT_GE(client, 0);
  EXPECT_EQ(read_n(client, 10), "while away");

  sink->stop();                      // must not hang with a client connected
  EXPECT_EQ(read_n(client, 1), "");  // the client sees EOF
  EXPECT_FALSE(fs::exists(path));
  ::close(client);
}

TEST(UnixSocketConsole, BuffersAtMostTheLimitKeepingNewest) {
  TempDir dir;
  auto console = UnixSocketConsole::listen(dir.path + "/c.sock");
  ASSERT_TRUE(console);
  (*console)->start([](std::span<const uint8_t> b) { return b.size(); });
  std::string big(UnixSocketConsole::kBufferLimit, 'x');
  (*console)->write(bytes_of(big));
  (*console)->write(bytes_of("END"));
  int client = connect_to(dir.path + "/c.sock");
  ASSERT_GE(client, 0);
  std::string got = read_n(client, UnixSocketConsole::kBufferLimit);
  EXPECT_EQ(got.size(), UnixSocketConsole::kBufferLimit);
  EXPECT_EQ(got.substr(got.size() - 3), "END");
  ::close(client);
}

TEST(UnixSocketConsole, ReplacesStaleSocketButNotLiveOne) {
  TempDir dir;
  std::string path = dir.path + "/stale.sock";
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // leaves a socket file nobody listens on
  }
  auto first = UnixSocketConsole::listen(path);
  ASSERT_TRUE(first) << first.error().message;
  auto second = UnixSocketConsole::listen(path);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("already in use"), std::string::npos)
      << second.error().message;

  std::string plain = dir.path + "/plain";
  std::ofstream(plain) << "x";
  auto third = UnixSocketConsole::listen(plain);
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().message.find("not a socket"), std::string::npos);
}

TEST(UnixSocketConsole, StopWithoutStartOrClientIsClean) {
  TempDir dir;
  auto console = UnixSocketConsole::listen(dir.path + "/idle.sock");
  ASSERT_TRUE(console);
  (*console)->stop();
  (*console)->stop();
  EXPECT_FALSE(fs::exists(dir.path + "/idle.sock"));
}

TEST(FdInputReader, FeedsBytesUntilStopped) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Serial uart(nullptr, nullptr);
  auto reader = FdInputReader::start(
      fds[0], [&uart](std::span<const uint8_t> b) { return uart.enqueue_input(b); });
  ASSERT_TRUE(reader);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  ASSERT_TRUE(eventually([&] { return uart.state().rx_fifo.size() == 3; }));
  (*reader)->stop();  // returns although the pipe is still open
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(FdInputReader, WaitsForFifoSpaceInsteadOfDropping) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Serial uart(nullptr, nullptr);
  auto reader = FdInputReader::start(
      fds[0], [&uart](std::span<const uint8_t> b) { return uart.enqueue_input(b); });
  ASSERT_TRUE(reader);
  std::string data(Serial::kInputCapacity + 100, 'd');
  ASSERT_EQ(::write(fds[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_TRUE(eventually([&] { return uart.input_space() == 0; }));
  // Drain the FIFO as a guest would; all bytes must arrive.
  size_t received = 0;
  ASSERT_TRUE(eventually([&] {
    uint8_t lsr = 0;
    uart.read(5, std::span(&lsr, 1));
    while (lsr & 1) {
      uint8_t b;
      uart.read(0, std::span(&b, 1));
      ++received;
      uart.read(5, std::span(&lsr, 1));
    }
    return received == data.size();
  }));
  (*reader)->stop();
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace godwit
