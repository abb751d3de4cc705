// godwit-bench: foundation benchmarks, printed as one JSON document.
//   start_to_first_byte_ms  process start (fork) to the guest's first UART
//                           byte on godwit's stdout (median, p90, min over runs)
//   vmm_rss_excluding_guest_kib
//                           resident memory of a running godwit minus its guest
//                           RAM mappings (memfd "godwit-ram-*"), 1 GiB guest
//   pio_exits_per_s         guest OUT to an unmapped port -> VMM -> guest, per
//                           second (100000 exits timed between two UART bytes)
//   block                   virtio-blk MB/s and IOPS, 4 KiB and 64 KiB, write and
//                           read, page cache and direct=on (block_bench.h)
//   snapshot                full snapshot create time and restore-to-running time
//                           (eager and lazy), 1 and 4 GiB guests with 90% of RAM
//                           touched (snapshot_bench.h)
// Numbers only; nothing is asserted (timings never belong in tests).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/block_bench.h"
#include "bench/snapshot_bench.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

Child spawn(const std::vector<std::string>& argv) {
  int p[2];
  if (::pipe(p) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 2);
    ::close(p[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(p[1]);
  return {pid, p[0]};
}

void reap(Child& c, bool kill_it) {
  if (kill_it) ::kill(c.pid, SIGKILL);
  int st;
  ::waitpid(c.pid, &st, 0);
  ::close(c.out);
}

/// Reads until `want` appears; returns the time it arrived, or nullopt on EOF/timeout.
std::optional<Clock::time_point> wait_byte(int fd, char want, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[256];
  while (Clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    auto t = Clock::now();
    if (std::find(buf, buf + n, want) != buf + n) return t;
  }
  return std::nullopt;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

nlohmann::json bench_start(const std::string& bin, int runs) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    Child c = spawn({bin + "/bin/godwit", "--image", bin + "/guests/probes/hello_real.img",
                     "--memory", "128M", "--serial", "stdout"});
    auto t1 = wait_byte(c.out, 'h', std::chrono::seconds(10));
    reap(c, false);
    if (t1) ms.push_back(std::chrono::duration<double, std::milli>(*t1 - t0).count());
  }
  if (ms.empty()) return {{"error", "no run produced output"}};
  return {{"runs", ms.size()},
          {"median", percentile(ms, 0.5)},
          {"p90", percentile(ms, 0.9)},
          {"min", *std::min_element(ms.begin(), ms.end())},
          {"target_median", 10.0}};
}

nlohmann::json bench_rss(const std::string& bin) {
  Child c = spawn({bin + "/bin/godwit", "--image", bin + "/guests/probes/spin.img", "--memory",
                   "1G", "--vcpus", "2", "--serial", "stdout"});
  wait_byte(c.out, '.', std::chrono::seconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::ifstream smaps("/proc/" + std::to_string(c.pid) + "/smaps");
  std::string line;
  bool guest = false;
  uint64_t total = 0, guest_kib = 0;
  while (std::getline(smaps, line)) {
    // Mapping header lines start with an address range "start-end perms ...".
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') != std::string::npos && line.find(':') != 2) {
      guest = line.find("godwit-ram-") != std::string::npos;
      continue;
    }
    if (line.rfind("Rss:", 0) == 0) {
      uint64_t kib = std::stoull(line.substr(4));
      total += kib;
      if (guest) guest_kib += kib;
    }
  }
  reap(c, true);
  return {{"total_rss_kib", total},
          {"guest_ram_rss_kib", guest_kib},
          {"vmm_rss_excluding_guest_kib", total - guest_kib},
          {"target_kib", 5 * 1024}};
}

nlohmann::json bench_pio(const std::string& bin, int runs) {
  std::vector<double> rates;
  for (int i = 0; i < runs; ++i) {
    Child c = spawn({bin + "/bin/godwit", "--image", bin + "/guests/probes/pio_loop.img",
                     "--memory", "64M", "--serial", "stdout"});
    auto s = wait_byte(c.out, 'S', std::chrono::seconds(10));
    auto e = s ? wait_byte(c.out, 'E', std::chrono::seconds(120)) : std::nullopt;
    reap(c, false);
    if (s && e) rates.push_back(100000.0 / std::chrono::duration<double>(*e - *s).count());
  }
  if (rates.empty()) return {{"error", "no run completed"}};
  return {{"runs", rates.size()},
          {"median_exits_per_s", percentile(rates, 0.5)},
          {"max_exits_per_s", *std::max_element(rates.begin(), rates.end())}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin = argc > 1 ? argv[1] : "build";
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    std::puts(R"({"error": "/dev/kvm is not available"})");
    return 1;
  }
  nlohmann::json out;
  out["benchmark"] = "godwit-foundation";
  out["start_to_first_byte_ms"] = bench_start(bin, 30);
  out["vmm_rss"] = bench_rss(bin);
  out["pio_exits"] = bench_pio(bin, 3);
  godwit::bench::BlockBenchOptions block;
  block.build_dir = bin;
  out["block"] = godwit::bench::run_block_bench(block);
  godwit::bench::SnapshotBenchOptions snapshot;
  snapshot.build_dir = bin;
  out["snapshot"] = godwit::bench::run_snapshot_bench(snapshot);
  std::puts(out.dump(2).c_str());
  return 0;
}
