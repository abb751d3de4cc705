// Snapshot benchmark (see snapshot_bench.h). Per size and run:
//
//   godwit --image memtouch.img --memory S      wait "memtouch: touched"
//     PUT /vm/pause, PUT /vm/snapshot {dir, full}   (timed), du DIR
//     PUT /vm/shutdown
//   godwit --restore DIR --restore-memory eager  wait "restore: running after"
//                                                and a heartbeat newer than
//                                                the snapshot's; shut down
//   godwit --restore DIR --restore-memory lazy   the same, plus "restore:
//                                                memory complete after"
//   rm -r DIR
//
// Only one VM exists at a time. Times are measured here from just before
// fork() to the moment the awaited line was read from the child's pipe; the
// VMM's own figures (from its main()) are reported beside them.
#include "bench/snapshot_bench.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "base/result.h"
#include "tools/godwitctl/api_client.h"

namespace godwit::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kTouchTimeout = 600s;     // 3.6 GiB of first touches on a busy host
constexpr auto kRestoreTimeout = 600s;   // eager restore reads all memory first
constexpr auto kHeartbeatTimeout = 60s;  // a few guest periods, plus lazy faults
constexpr auto kApiTimeout = 600s;       // the snapshot call writes GiBs
constexpr uint64_t kTmpfsMagic = 0x01021994;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// v rounded to `decimals` places (so the JSON shows 240.1, not 240.10000000000002).
double round_to(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// A child godwit with stdout (the guest console) and stderr (the VMM log)
/// on pipes. Every chunk read is stamped with its arrival time, so a line's
/// arrival is known whenever it is looked for. Killed when destroyed.
class VmProcess {
 public:
  enum Stream { out = 0, err = 1 };

  /// A line that was found: when it arrived and its regex groups.
  struct Found {
    Clock::time_point at;
    std::vector<std::string> groups;
  };

  [[nodiscard]] static Result<std::unique_ptr<VmProcess>> spawn(
      const std::vector<std::string>& argv) {
    auto p = std::unique_ptr<VmProcess>(new VmProcess());
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_errno("pipe for " + argv[0]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      ::close(out_pipe[0]);
      ::close(out_pipe[1]);
      return fail_errno("pipe for " + argv[0]);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    p->start_ = Clock::now();
    p->pid_ = ::fork();
    if (p->pid_ < 0) return fail_errno("fork for " + argv[0]);
    if (p->pid_ == 0) {
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    p->fds_[out] = out_pipe[0];
    p->fds_[err] = err_pipe[0];
    return p;
  }

  ~VmProcess() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  VmProcess(const VmProcess&) = delete;
  VmProcess& operator=(const VmProcess&) = delete;

  [[nodiscard]] Clock::time_point start() const { return start_; }
  [[nodiscard]] const std::string& text(Stream s) const { return text_[s]; }

  /// Waits until `re` matches in stream `s` (at or after byte `from`) and
  /// `accept` takes the match; fails on timeout or when godwit exits first.
  [[nodiscard]] Result<Found> wait_for(
      Stream s, const std::regex& re, Clock::duration timeout, const std::string& what,
      const std::function<bool(const std::smatch&)>& accept = nullptr) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const std::string& t = text_[s];
      for (std::sregex_iterator it(t.begin(), t.end(), re), end; it != end; ++it) {
        if (accept && !accept(*it)) continue;
        Found f{arrival(s, static_cast<size_t>(it->position() + it->length())), {}};
        for (size_t g = 0; g < it->size(); ++g) f.groups.push_back((*it)[g].str());
        return f;
      }
      if (exit_status_)
        return fail("godwit exited with status " + std::to_string(*exit_status_) + " before " +
                    what + "; stderr: " + text_[err] + "; console: " + text_[out]);
      if (Clock::now() > deadline)
        return fail(
            "no " + what + " within " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
            " s; stderr: " + text_[err] + "; console tail: " +
            text_[out].substr(text_[out].size() > 2000 ? text_[out].size() - 2000 : 0));
      pump(100);
    }
  }

  /// Reads what is there for up to `ms` milliseconds.
  void pump(int ms) {
    pollfd pfd[2] = {{fds_[out], POLLIN, 0}, {fds_[err], POLLIN, 0}};
    const bool open = fds_[out] >= 0 || fds_[err] >= 0;
    if (open && ::poll(pfd, 2, ms) > 0) {
      const auto now = Clock::now();
      for (int i = 0; i < 2; ++i) {
        if (fds_[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[8192];
        ssize_t n = ::read(fds_[i], buf, sizeof buf);
        if (n > 0) {
          text_[i].append(buf, static_cast<size_t>(n));
          chunks_[i].push_back({text_[i].size(), now});
        } else {
          ::close(fds_[i]);
          fds_[i] = -1;
        }
      }
    } else if (!open) {
      ::usleep(static_cast<useconds_t>(ms) * 1000);
    }
    if (!exit_status_) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_)
        exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }

  /// Asks godwit to stop (PUT /vm/shutdown) and waits; kills it after 60 s.
  void shutdown(const std::string& api_sock) {
    (void)ctl::ApiClient(api_sock, 10s).request("PUT", "/vm/shutdown");
    const auto deadline = Clock::now() + 60s;
    while (!exit_status_ && Clock::now() < deadline) pump(50);
    if (!exit_status_) {
      ::kill(pid_, SIGKILL);
      while (!exit_status_) pump(50);
    }
  }

 private:
  VmProcess() = default;

  /// When the byte before `end` of stream `s` was read.
  [[nodiscard]] Clock::time_point arrival(Stream s, size_t end) const {
    for (const auto& [chunk_end, at] : chunks_[s])
      if (chunk_end >= end) return at;
    return Clock::now();
  }

  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  std::string text_[2];
  std::vector<std::pair<size_t, Clock::time_point>> chunks_[2];
  std::optional<int> exit_status_;
  Clock::time_point start_;
};

/// Bytes the directory's files occupy on disk (as du counts them) and
/// their apparent size.
std::pair<uint64_t, uint64_t> disk_usage(const std::string& dir) {
  uint64_t blocks = 0, apparent = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    blocks += static_cast<uint64_t>(st.st_blocks) * 512;
    apparent += static_cast<uint64_t>(st.st_size);
  }
  return {blocks, apparent};
}

/// The highest "memtouch: pass N" on a console (0 when none).
uint64_t last_pass(const std::string& console) {
  static const std::regex pass_line("memtouch: pass (\\d+)\n");
  uint64_t last = 0;
  for (std::sregex_iterator it(console.begin(), console.end(), pass_line), end; it != end; ++it)
    last = std::max<uint64_t>(last, std::stoull((*it)[1]));
  return last;
}

/// Restores `snapshot_dir` with `mode` memory and measures it; the guest
/// must print a heartbeat newer than `snapshot_pass`.
[[nodiscard]] Result<nlohmann::json> measure_restore(const SnapshotBenchOptions& options,
                                                     const std::string& snapshot_dir,
                                                     const std::string& api_sock,
                                                     const std::string& mode,
                                                     uint64_t snapshot_pass) {
  static const std::regex running(R"(restore: running after ([0-9.]+) ms \(memory (\w+)\))");
  static const std::regex complete(R"(restore: memory complete after ([0-9.]+) ms \(([^)]*)\))");
  static const std::regex pass_line("memtouch: pass (\\d+)\n");
  auto vm = TRY(
      VmProcess::spawn({options.build_dir + "/bin/godwit", "--restore", snapshot_dir,
                        "--restore-memory", mode, "--serial", "stdout", "--api-sock", api_sock}));
  const std::string what = mode + " restore";
  auto run = vm->wait_for(VmProcess::err, running, kRestoreTimeout, "\"restore: running\" line");
  if (!run) return fail(run.error().context(what));
  if (run->groups[2] != mode)
    return fail(what + ": the VMM reports memory " + run->groups[2] + ": " +
                vm->text(VmProcess::err));
  nlohmann::json r{{"wall_to_running_ms", round_to(ms_between(vm->start(), run->at), 1)},
                   {"vmm_running_ms", std::stod(run->groups[1])}};
  auto beat = vm->wait_for(VmProcess::out, pass_line, kHeartbeatTimeout,
                           "heartbeat newer than pass " + std::to_string(snapshot_pass),
                           [&](const std::smatch& m) { return std::stoull(m[1]) > snapshot_pass; });
  r["alive"] = beat.has_value();
  if (beat) {
    r["first_pass"] = std::stoull(beat->groups[1]);
    r["wall_to_heartbeat_ms"] = round_to(ms_between(vm->start(), beat->at), 1);
  } else {
    r["alive_error"] = beat.error().message;
  }
  if (mode == "lazy") {
    auto done = vm->wait_for(VmProcess::err, complete, kRestoreTimeout, "\"memory complete\" line");
    if (!done) return fail(done.error().context(what));
    r["wall_to_memory_complete_ms"] = round_to(ms_between(vm->start(), done->at), 1);
    r["vmm_memory_complete_ms"] = std::stod(done->groups[1]);
    r["lazy_stats"] = done->groups[2];
  }
  vm->shutdown(api_sock);
  return r;
}

/// One run at one size: source, snapshot, eager and lazy restore.
[[nodiscard]] Result<nlohmann::json> run_once(const SnapshotBenchOptions& options,
                                              const std::string& work_dir, uint32_t size_mib,
                                              uint32_t touch_mib, int run) {
  static const std::regex touched(R"(memtouch: touched (\d+) MiB in (\d+) ms)");
  static const std::regex pass_line("memtouch: pass (\\d+)\n");
  const std::string snapshot_dir =
      work_dir + "/snap-" + std::to_string(size_mib) + "m-" + std::to_string(run);
  const std::string src_sock = work_dir + "/source.sock";
  const std::string dst_sock = work_dir + "/restored.sock";
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_snapshot{snapshot_dir};

  nlohmann::json r{{"run", run}};
  uint64_t snapshot_pass = 0;
  {
    const std::string params = "memtouch.mb=" + std::to_string(touch_mib) +
                               ",memtouch.dirtymb=" + std::to_string(options.dirty_mib) +
                               ",memtouch.ms=" + std::to_string(options.period_ms);
    auto src = TRY(VmProcess::spawn({options.build_dir + "/bin/godwit", "--image",
                                     options.build_dir + "/guests/memtouch.img", "--memory",
                                     std::to_string(size_mib) + "M", "--vcpus", "1", "--serial",
                                     "stdout", "--api-sock", src_sock, "--guest-param", params}));
    auto done = src->wait_for(VmProcess::out, touched, kTouchTimeout, "\"memtouch: touched\" line");
    if (!done) return fail(done.error().context("source"));
    r["source_boot_touch_s"] = round_to(ms_between(src->start(), done->at) / 1000, 3);
    r["guest_touch_ms"] = std::stoull(done->groups[2]);
    // One heartbeat: the guest is in its steady loop (and its period is known to work).
    auto beat = src->wait_for(VmProcess::out, pass_line, kHeartbeatTimeout, "first heartbeat");
    if (!beat) return fail(beat.error().context("source"));

    ctl::ApiClient api(src_sock, kApiTimeout);
    auto paused = api.request("PUT", "/vm/pause");
    if (!paused || paused->status != 200)
      return fail("source: PUT /vm/pause failed: " +
                  (paused ? paused->body : paused.error().message));
    src->pump(50);  // a line already on its way
    snapshot_pass = last_pass(src->text(VmProcess::out));

    const nlohmann::json body{{"dir", snapshot_dir}, {"type", "full"}};
    const auto t0 = Clock::now();
    auto snap = api.request("PUT", "/vm/snapshot", body.dump());
    const auto t1 = Clock::now();
    if (!snap) return fail(snap.error().context("PUT /vm/snapshot"));
    if (snap->status != 200)
      return fail("PUT /vm/snapshot: HTTP " + std::to_string(snap->status) + ": " + snap->body);
    nlohmann::json report = nlohmann::json::parse(snap->body, nullptr, false);
    r["snapshot_create_ms"] = round_to(ms_between(t0, t1), 1);
    if (!report.is_discarded()) {
      for (const char* key : {"duration_ms", "bytes_written", "data_pages", "zero_pages"})
        if (report.contains(key)) r[std::string("snapshot_") + key] = report[key];
    }
    auto [on_disk, apparent] = disk_usage(snapshot_dir);
    r["snapshot_disk_bytes"] = on_disk;
    r["snapshot_apparent_bytes"] = apparent;
    r["snapshot_pass"] = snapshot_pass;
    src->shutdown(src_sock);
  }
  for (const char* mode : {"eager", "lazy"})
    r[mode] = TRY(measure_restore(options, snapshot_dir, dst_sock, mode, snapshot_pass));
  return r;
}

/// Medians of the numeric figures over the runs (flat and per restore mode).
nlohmann::json summarize(const nlohmann::json& runs) {
  auto med = [&](const std::string& mode, const std::string& key) {
    std::vector<double> v;
    for (const auto& run : runs) {
      const nlohmann::json& from = mode.empty() ? run : run[mode];
      if (from.contains(key) && from[key].is_number()) v.push_back(from[key].get<double>());
    }
    if (v.empty()) return nlohmann::json(nullptr);
    const double m = round_to(median(v), 3);
    // Byte and page counts stay integers in the JSON.
    if (m == std::floor(m) && std::fabs(m) < 9e15) return nlohmann::json(static_cast<int64_t>(m));
    return nlohmann::json(m);
  };
  auto all_alive = [&](const std::string& mode) {
    return std::all_of(runs.begin(), runs.end(),
                       [&](const nlohmann::json& run) { return run[mode].value("alive", false); });
  };
  nlohmann::json s;
  for (const char* key : {"source_boot_touch_s", "guest_touch_ms", "snapshot_create_ms",
                          "snapshot_duration_ms", "snapshot_bytes_written", "snapshot_disk_bytes",
                          "snapshot_data_pages", "snapshot_zero_pages"})
    s[key] = med("", key);
  s["eager"] = {{"wall_to_running_ms", med("eager", "wall_to_running_ms")},
                {"vmm_running_ms", med("eager", "vmm_running_ms")},
                {"wall_to_heartbeat_ms", med("eager", "wall_to_heartbeat_ms")},
                {"alive_every_run", all_alive("eager")}};
  s["lazy"] = {{"wall_to_running_ms", med("lazy", "wall_to_running_ms")},
               {"vmm_running_ms", med("lazy", "vmm_running_ms")},
               {"wall_to_heartbeat_ms", med("lazy", "wall_to_heartbeat_ms")},
               {"wall_to_memory_complete_ms", med("lazy", "wall_to_memory_complete_ms")},
               {"vmm_memory_complete_ms", med("lazy", "vmm_memory_complete_ms")},
               {"alive_every_run", all_alive("lazy")}};
  return s;
}

/// Every run of one size; fewer runs when the budget would be passed.
nlohmann::json run_size(const SnapshotBenchOptions& options, const std::string& work_dir,
                        uint32_t size_mib, Clock::time_point bench_start) {
  const uint32_t touched_total = size_mib * options.touch_percent / 100;
  nlohmann::json out{{"memory_mib", size_mib}};
  if (touched_total <= 16) return {{"memory_mib", size_mib}, {"error", "too small to touch"}};
  const uint32_t touch_mib = touched_total - 16;  // memtouch starts at 16 MiB
  out["touched_mib"] = touched_total;
  out["memtouch_mb"] = touch_mib;
  nlohmann::json runs = nlohmann::json::array();
  int planned = options.runs;
  for (int run = 0; run < planned; ++run) {
    const auto t0 = Clock::now();
    auto r = run_once(options, work_dir, size_mib, touch_mib, run);
    if (!r) {
      out["error"] = r.error().message;
      break;
    }
    runs.push_back(std::move(*r));
    if (run == 0 && planned > 1) {
      const double run_s = std::chrono::duration<double>(Clock::now() - t0).count();
      const double elapsed = std::chrono::duration<double>(Clock::now() - bench_start).count();
      const double projected = elapsed + run_s * (planned - 1);
      if (projected > options.budget_s) {
        out["runs_note"] = "1 run instead of " + std::to_string(planned) + ": one run took " +
                           std::to_string(static_cast<int>(run_s)) + " s, so " +
                           std::to_string(planned) + " would take the benchmark to about " +
                           std::to_string(static_cast<int>(projected)) + " s, over its budget of " +
                           std::to_string(static_cast<int>(options.budget_s)) + " s";
        planned = 1;
      }
    }
  }
  out["runs"] = runs.size();
  if (!runs.empty()) out["median"] = summarize(runs);
  out["per_run"] = runs;
  return out;
}

}  // namespace

nlohmann::json run_snapshot_bench(const SnapshotBenchOptions& options) {
  if (options.runs < 1 || options.sizes_mib.empty() || options.period_ms == 0 ||
      options.touch_percent == 0 || options.touch_percent > 100)
    return {{"error",
             "snapshot bench: runs, sizes, period and touch percent must be positive "
             "(touch percent at most 100)"}};
  const auto start = Clock::now();
  const std::string work_dir =
      options.parent_dir + "/godwit-snapshot-bench-" + std::to_string(::getpid());
  if (::mkdir(work_dir.c_str(), 0700) != 0)
    return {{"error", Error::from_errno("creating " + work_dir).message}};
  struct statfs fs {};
  const bool have_fs = ::statfs(work_dir.c_str(), &fs) == 0;
  char fs_type[32];
  std::snprintf(fs_type, sizeof fs_type, "0x%lx",
                have_fs ? static_cast<unsigned long>(fs.f_type) : 0ul);

  nlohmann::json sizes = nlohmann::json::array();
  for (uint32_t size : options.sizes_mib) sizes.push_back(run_size(options, work_dir, size, start));
  std::error_code ec;
  std::filesystem::remove_all(work_dir, ec);

  nlohmann::json out{
      {"benchmark", "godwit-snapshot"},
      {"guest", "memtouch.img: first qword of every 4 KiB page of " +
                    std::to_string(options.touch_percent) +
                    "% of RAM (minus the 16 MiB below the range) written, then " +
                    std::to_string(options.dirty_mib) + " MiB re-dirtied every " +
                    std::to_string(options.period_ms) + " ms; 1 vCPU"},
      {"snapshot_dir", {{"parent", options.parent_dir}, {"statfs_type", fs_type}}},
      {"page_cache",
       "warm: each snapshot is restored right after it was written, without dropping caches"},
      {"units",
       "ms/s of host wall time; wall_* from fork of godwit to the line read from its pipe; "
       "vmm_* are the VMM's own log figures from its main(); snapshot_create_ms is the PUT "
       "/vm/snapshot call (VM paused), snapshot_duration_ms the VMM's figure; "
       "snapshot_disk_bytes as du counts (allocated blocks); medians over the runs"},
      {"total_s", round_to(std::chrono::duration<double>(Clock::now() - start).count(), 1)},
      {"sizes", sizes}};
  if (have_fs && static_cast<uint64_t>(fs.f_type) == kTmpfsMagic)
    out["snapshot_dir"]["warning"] = "tmpfs: the snapshot lives in RAM, restores read no disk";
  return out;
}

}  // namespace godwit::bench
