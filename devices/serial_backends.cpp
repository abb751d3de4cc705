// Simple console backends: stdout, file and tee sinks, the fd input reader,
// and the input back-pressure helper they share with the socket console.
#include "devices/serial_backends.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "base/log.h"

namespace godwit {
namespace {

// Writes everything or stops at the first real error.
void write_all(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

}  // namespace

void StdoutSink::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  write_all(STDOUT_FILENO, bytes);
}

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, FileSinkMode mode) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (mode == FileSinkMode::append ? O_APPEND : O_TRUNC);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return fail_errno("open serial output file " + path);
  return std::unique_ptr<FileSink>(new FileSink(UniqueFd(fd)));
}

void FileSink::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  write_all(fd_.get(), bytes);
}

TeeSink::TeeSink(std::shared_ptr<SerialSink> next, size_t keep_bytes)
    : next_(std::move(next)), keep_(keep_bytes) {}

void TeeSink::write(std::span<const uint8_t> bytes) {
  {
    std::lock_guard lock(mutex_);
    buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    total_ += bytes.size();
    // Trim only when twice the limit is reached: amortised O(1) per byte.
    if (buffer_.size() > 2 * keep_) buffer_.erase(0, buffer_.size() - keep_);
  }
  if (next_) next_->write(bytes);
}

std::string TeeSink::tail() const {
  std::lock_guard lock(mutex_);
  if (buffer_.size() <= keep_) return buffer_;
  return buffer_.substr(buffer_.size() - keep_);
}

uint64_t TeeSink::total_bytes() const {
  std::lock_guard lock(mutex_);
  return total_;
}

size_t deliver_input(const SerialInputHandler& input, std::span<const uint8_t> bytes,
                     const std::atomic<bool>& stopping) {
  size_t done = 0;
  while (done < bytes.size() && !stopping.load()) {
    size_t n = input(bytes.subspan(done));
    done += n;
    if (done < bytes.size() && n == 0) {
      // The guest has not drained its FIFO yet: back-pressure, not loss.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return done;
}

Result<std::unique_ptr<FdInputReader>> FdInputReader::start(int fd, SerialInputHandler input) {
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) return fail_errno("serial input reader: eventfd");
  std::unique_ptr<FdInputReader> reader(new FdInputReader(fd, UniqueFd(wake)));
  reader->thread_ = std::thread([r = reader.get(), in = std::move(input)] { r->run(in); });
  return reader;
}

FdInputReader::~FdInputReader() { stop(); }

void FdInputReader::stop() {
  stopping_.store(true);
  uint64_t one = 1;
  ssize_t unused = ::write(wake_fd_.get(), &one, sizeof one);
  (void)unused;
  if (thread_.joinable()) thread_.join();
}

void FdInputReader::run(SerialInputHandler input) {
  uint8_t buf[4096];
  while (!stopping_.load()) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      log::warn(std::string("serial input: poll: ") + std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (!fds[0].revents) continue;
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;  // EOF or error: no more input
    deliver_input(input, std::span(buf, static_cast<size_t>(n)), stopping_);
  }
}

bool stdin_is_dev_null() {
  struct stat in {
  }, null{};
  if (::fstat(STDIN_FILENO, &in) != 0) return true;
  if (::stat("/dev/null", &null) != 0) return false;
  return S_ISCHR(in.st_mode) && in.st_rdev == null.st_rdev;
}

}  // namespace godwit
