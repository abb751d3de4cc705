// Test harness: runs a real godwit process with its serial console in a file
// and its API on a unix socket in a private temporary directory, and offers
// waits with deadlines (a test never hangs) plus an API client.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "tools/godwitctl/api_client.h"

namespace godwit::test {

/// Reads a whole file ("" if missing).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Counts occurrences of `needle` in `text`.
inline size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size()))
    ++n;
  return n;
}

/// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "godwit-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Runs any command with stdout/stderr captured into files.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::string& out_path, const std::string& err_path)
      : out_path_(out_path), err_path_(err_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Process() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// Waits up to `timeout` for the exit; the exit status, or -signal, or
  /// nullopt when still running.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status_;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string stdout_text() const { return read_file(out_path_); }
  [[nodiscard]] std::string stderr_text() const { return read_file(err_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_, err_path_;
};

/// A godwit VMM with serial output in a file and (optionally) an API socket.
class Godwit {
 public:
  /// Starts build/bin/godwit with `args` plus --serial file:... and --api-sock.
  explicit Godwit(std::vector<std::string> args, bool with_api = true)
      : serial_(dir_.file("serial.log")), sock_(dir_.file("api.sock")) {
    std::vector<std::string> argv{build_path("bin/godwit")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--serial");
    argv.push_back("file:" + serial_);
    if (with_api) {
      argv.push_back("--api-sock");
      argv.push_back(sock_);
    }
    proc_.emplace(argv, dir_.file("stdout"), dir_.file("stderr"));
  }

  /// The guest's serial output so far.
  [[nodiscard]] std::string serial() const { return read_file(serial_); }
  [[nodiscard]] std::string stderr_text() const { return proc_->stderr_text(); }
  [[nodiscard]] const std::string& api_sock() const { return sock_; }
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  Process& process() { return *proc_; }

  /// Waits until the serial output contains `needle` `times` times.
  bool wait_serial(const std::string& needle, std::chrono::milliseconds timeout, size_t times = 1) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count_of(serial(), needle) >= times) return true;
      if (proc_->wait(std::chrono::milliseconds(0))) return count_of(serial(), needle) >= times;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  /// Waits until the API socket answers GET /vm.
  bool wait_api(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(sock_)) {
        auto r = api().request("GET", "/vm");
        if (r && r->status == 200) return true;
      }
      if (proc_->wait(std::chrono::milliseconds(0))) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  /// A client for the API socket.
  [[nodiscard]] ctl::ApiClient api() const {
    return ctl::ApiClient(sock_, std::chrono::seconds(30));
  }

  /// Runs build/bin/godwitctl --api-sock SOCK args...; returns {status, stdout+stderr}.
  std::pair<int, std::string> ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{build_path("bin/godwitctl"), "--api-sock", sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out = dir_.file("ctl.out"), err = dir_.file("ctl.err");
    Process p(argv, out, err);
    auto st = p.wait(std::chrono::seconds(60));
    return {st.value_or(-1), read_file(out) + read_file(err)};
  }

  /// Waits for godwit to exit.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) { return proc_->wait(timeout); }

 private:
  TempDir dir_;
  std::string serial_;
  std::string sock_;
  std::optional<Process> proc_;
};

/// Path of a probe image.
inline std::string probe(const std::string& name) {
  return build_path("guests/probes/" + name + ".img");
}

}  // namespace godwit::test
