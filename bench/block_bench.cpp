// Block-device benchmark (see block_bench.h): creates a disk file, runs
// godwit with blkbench.img once per case and run, parses the guest's result
// line and turns its TSC delta into MB/s and IOPS (medians over the runs).
#include "bench/block_bench.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace godwit::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kRunTimeout = 120s;
constexpr uint64_t kMiB = 1024 * 1024;

/// One benchmark case: request size, direction, page cache or O_DIRECT.
struct BlockCase {
  uint32_t size_kib;
  bool write;
  bool direct;
};

/// What godwit printed and how it ended.
struct ProcessOutcome {
  int exit_status = -1;  ///< exit code, or 128 + signal
  std::string out;
  std::string err;
  double wall_s = 0;  ///< fork to reaped
};

/// The guest's result line.
struct GuestResult {
  uint64_t tsc = 0;
  uint64_t errors = 0;
  uint32_t queue = 0;
};

/// Host TSC cycles per second, measured against steady_clock over 200 ms.
double measure_tsc_hz() {
  auto t0 = Clock::now();
  uint64_t c0 = __rdtsc();
  std::this_thread::sleep_for(200ms);
  uint64_t c1 = __rdtsc();
  auto t1 = Clock::now();
  return static_cast<double>(c1 - c0) / std::chrono::duration<double>(t1 - t0).count();
}

/// Writes `mib` MiB of non-zero data to `path` (so reads hit real blocks,
/// not holes) and syncs it.
[[nodiscard]] Result<void> create_disk(const std::string& path, uint32_t mib) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno("open " + path);
  std::vector<uint64_t> block(kMiB / sizeof(uint64_t));
  for (uint32_t m = 0; m < mib; ++m) {
    for (size_t i = 0; i < block.size(); ++i) block[i] = (m * kMiB + i * 8) ^ 0x0123456789abcdefULL;
    const char* p = reinterpret_cast<const char*>(block.data());
    size_t left = kMiB;
    while (left > 0) {
      ssize_t n = ::pwrite(fd.get(), p, left, static_cast<off_t>(m * kMiB + (kMiB - left)));
      if (n < 0) return fail_errno("write " + path + " at MiB " + std::to_string(m));
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fdatasync(fd.get()) != 0) return fail_errno("fdatasync " + path);
  return {};
}

/// Drains readable pipes into the strings; returns false once both are closed.
bool pump(std::vector<pollfd>& fds, std::string* sinks[2]) {
  if (std::all_of(fds.begin(), fds.end(), [](const pollfd& f) { return f.fd < 0; })) return false;
  if (::poll(fds.data(), fds.size(), 100) <= 0) return true;
  bool open = false;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].fd < 0) continue;
    if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
    }
    open = true;
  }
  return open;
}

/// Runs argv (argv[0] a path) with stdout and stderr captured; kills it
/// after kRunTimeout.
[[nodiscard]] Result<ProcessOutcome> run_process(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_errno("pipe for " + argv[0]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return fail_errno("pipe for " + argv[0]);
  }
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork for " + argv[0]);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ProcessOutcome outcome;
  std::vector<pollfd> fds{{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&outcome.out, &outcome.err};
  bool timed_out = false;
  while (pump(fds, sinks)) {
    if (Clock::now() - start > kRunTimeout) {
      ::kill(pid, SIGKILL);
      timed_out = true;
      break;
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return fail_errno("waitpid " + argv[0]);
  outcome.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (timed_out) return fail(argv[0] + " did not finish within 120 s; output: " + outcome.out);
  outcome.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return outcome;
}

/// Finds "blkbench size=... tsc=N errors=E" for this case in the guest output.
[[nodiscard]] Result<GuestResult> parse_result(const std::string& out, const BlockCase& c,
                                               uint32_t count) {
  static const std::regex line(
      R"(blkbench size=(\d+) count=(\d+) depth=\d+ write=(\d) span=\d+ queue=(\d+) tsc=(\d+) errors=(\d+))");
  std::smatch m;
  if (!std::regex_search(out, m, line)) return fail("no blkbench result line in: " + out);
  if (std::stoul(m[1]) != c.size_kib || std::stoul(m[2]) != count ||
      std::stoul(m[3]) != (c.write ? 1u : 0u))
    return fail("blkbench result line for another case: " + m.str());
  return GuestResult{.tsc = std::stoull(m[5]),
                     .errors = std::stoull(m[6]),
                     .queue = static_cast<uint32_t>(std::stoul(m[4]))};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// v rounded to `decimals` places (so the JSON shows 240.1, not 240.10000000000002).
double round_to(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

std::string case_name(const BlockCase& c) {
  return std::string(c.write ? "write" : "read") + "_" + std::to_string(c.size_kib) + "k" +
         (c.direct ? "_direct" : "");
}

/// Runs one case `options.runs` times; medians of guest time (and the rates
/// derived from it) and of host wall time.
[[nodiscard]] Result<nlohmann::json> run_case(const BlockBenchOptions& options,
                                              const std::string& disk, const BlockCase& c,
                                              double tsc_hz) {
  const uint32_t count = c.direct ? options.direct_count : options.count;
  const std::string params = "blkbench.size=" + std::to_string(c.size_kib) +
                             ",blkbench.count=" + std::to_string(count) +
                             ",blkbench.depth=" + std::to_string(options.depth) +
                             ",blkbench.write=" + (c.write ? "1" : "0") +
                             ",blkbench.span=" + std::to_string(options.span_mib);
  const std::vector<std::string> argv{options.build_dir + "/bin/godwit",
                                      "--image",
                                      options.build_dir + "/guests/blkbench.img",
                                      "--memory",
                                      "64M",
                                      "--serial",
                                      "stdout",
                                      "--disk",
                                      "path=" + disk + (c.direct ? ",direct=on" : ""),
                                      "--guest-param",
                                      params};
  const double bytes = static_cast<double>(count) * c.size_kib * 1024;
  std::vector<double> guest_s, wall_s;
  nlohmann::json runs = nlohmann::json::array();
  uint32_t queue = 0;
  for (int r = 0; r < options.runs; ++r) {
    auto outcome = TRY(run_process(argv));
    if (outcome.exit_status != 0)
      return fail(case_name(c) + ": godwit exited with status " +
                  std::to_string(outcome.exit_status) + "; output: " + outcome.out + outcome.err);
    auto parsed = parse_result(outcome.out, c, count);
    if (!parsed) return fail(parsed.error().context(case_name(c)));
    const GuestResult& result = *parsed;
    if (result.errors != 0)
      return fail(case_name(c) + ": " + std::to_string(result.errors) + " requests failed");
    queue = result.queue;
    double seconds = static_cast<double>(result.tsc) / tsc_hz;
    guest_s.push_back(seconds);
    wall_s.push_back(outcome.wall_s);
    runs.push_back({{"guest_s", round_to(seconds, 6)},
                    {"wall_s", round_to(outcome.wall_s, 3)},
                    {"mb_per_s", round_to(bytes / seconds / 1e6, 1)},
                    {"iops", static_cast<int64_t>(std::llround(count / seconds))}});
  }
  const double mid = median(guest_s);
  return nlohmann::json{{"case", case_name(c)},
                        {"op", c.write ? "write" : "read"},
                        {"request_kib", c.size_kib},
                        {"direct", c.direct},
                        {"count", count},
                        {"depth", options.depth},
                        {"queue_entries", queue},
                        {"runs", options.runs},
                        {"mb_per_s", round_to(bytes / mid / 1e6, 1)},
                        {"iops", static_cast<int64_t>(std::llround(count / mid))},
                        {"guest_s", round_to(mid, 6)},
                        {"host_wall_s", round_to(median(wall_s), 3)},
                        {"per_run", runs}};
}

[[nodiscard]] Result<nlohmann::json> run_all(const BlockBenchOptions& options) {
  if (options.runs < 1 || options.count == 0 || options.direct_count == 0 || options.depth == 0 ||
      options.span_mib == 0)
    return fail("block bench: runs, count, direct_count, depth and span_mib must be positive");
  const std::string dir = options.disk_dir.empty() ? options.build_dir : options.disk_dir;
  const std::string disk = dir + "/blkbench-disk-" + std::to_string(::getpid()) + ".img";
  const double tsc_hz = measure_tsc_hz();
  TRY_VOID(create_disk(disk, options.span_mib));
  struct statfs fs {};
  const bool have_fs = ::statfs(disk.c_str(), &fs) == 0;

  nlohmann::json cases = nlohmann::json::array();
  Result<void> outcome{};
  for (bool direct : {false, true}) {
    for (uint32_t size : {4u, 64u}) {
      for (bool write : {true, false}) {
        auto r = run_case(options, disk, {size, write, direct}, tsc_hz);
        if (!r) {
          outcome = fail(r.error());
          break;
        }
        cases.push_back(std::move(*r));
      }
      if (!outcome) break;
    }
    if (!outcome) break;
  }
  ::unlink(disk.c_str());
  if (!outcome) return fail(outcome.error());
  char fs_type[32];
  std::snprintf(fs_type, sizeof fs_type, "0x%lx",
                have_fs ? static_cast<unsigned long>(fs.f_type) : 0ul);
  return nlohmann::json{
      {"benchmark", "godwit-block"},
      {"guest", "blkbench.img: ring-3 virtio-blk driver, one queue, polled, no interrupts"},
      {"tsc_hz", static_cast<int64_t>(std::llround(tsc_hz))},
      {"disk", {{"dir", dir}, {"size_mib", options.span_mib}, {"statfs_type", fs_type}}},
      {"units",
       "mb_per_s = 10^6 bytes/s of request data over the guest's TSC time of all "
       "requests; host_wall_s = the whole godwit process (boot to exit); medians"},
      {"cases", cases}};
}

}  // namespace

nlohmann::json run_block_bench(const BlockBenchOptions& options) {
  auto r = run_all(options);
  if (!r) return {{"error", r.error().message}};
  return *r;
}

}  // namespace godwit::bench
