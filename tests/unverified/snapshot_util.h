// Helpers for the snapshot/restore tests against real godwit processes:
// pausing and snapshotting through the API and godwitctl, restoring with
// `godwit --restore`, dumping all guest RAM through GET /vm/memory, checking
// that snapshot files are never modified, and the selfcheck guest's disk and
// tap set-up (the same set-up as tests/integration/virtio_devices_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "integration/godwit_process.h"
#include "integration/selfcheck_devices.h"
#include "unit/netns_util.h"

namespace godwit::test {

using namespace std::chrono_literals;

// Generous bounds, never timing assertions: guest ring 0 is emulated on PVM
// hosts, and a loaded CI machine can be an order of magnitude slower still.
inline constexpr auto kApiTimeout = 300s;
inline constexpr auto kGuestTimeout = 600s;
inline constexpr auto kCtlTimeout = std::chrono::milliseconds(300s);

/// GET /vm/memory answers at most this much per request (vm_control.h).
inline constexpr uint64_t kMemoryReadChunk = uint64_t{256} << 20;

/// Exit status and combined output of one godwitctl run.
struct CtlResult {
  int status = -1;
  std::string output;
};

/// Runs build/bin/godwitctl with `args` (prefixed by --api-sock `sock` unless
/// `sock` is empty); output files go to `scratch`.
inline CtlResult run_ctl(const std::string& sock, std::vector<std::string> args,
                         const TempDir& scratch) {
  std::vector<std::string> argv{build_path("bin/godwitctl")};
  if (!sock.empty()) {
    argv.push_back("--api-sock");
    argv.push_back(sock);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = scratch.file("ctl.out"), err = scratch.file("ctl.err");
  Process p(argv, out, err);
  auto status = p.wait(kCtlTimeout);
  return {status.value_or(-1), read_file(out) + read_file(err)};
}

/// A client with a deadline long enough for a 256 MiB memory read.
inline ctl::ApiClient slow_api(const Godwit& vm) {
  return ctl::ApiClient(vm.api_sock(), std::chrono::seconds(300));
}

/// PUT /vm/<action> (pause, resume, shutdown); returns what went wrong, or "".
inline std::string vm_action(const Godwit& vm, const std::string& action) {
  auto r = slow_api(vm).request("PUT", "/vm/" + action);
  if (!r) return action + ": " + r.error().message;
  if (r->status != 200) return action + ": HTTP " + std::to_string(r->status) + " " + r->body;
  return {};
}

/// The "state" member of GET /vm ("" when it cannot be read).
inline std::string vm_state(const Godwit& vm) {
  auto r = slow_api(vm).request("GET", "/vm");
  if (!r || r->status != 200) return {};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_object() ? j.value("state", std::string()) : std::string();
}

/// Waits until GET /vm reports `state`. The API answers before
/// Machine::start() has run, so "created" comes first.
inline bool wait_for_state(Godwit& vm, const std::string& state,
                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (vm_state(vm) == state) return true;
    if (vm.process().wait(std::chrono::milliseconds(0))) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// Waits until a restoring godwit logs that the VM is up ("restore: paused
/// after" / "restore: running after"), which it does once Machine::start()
/// has returned; false when it exited or the time ran out.
inline bool wait_restored(Godwit& vm, bool paused, std::chrono::milliseconds timeout) {
  const std::string needle = paused ? "restore: paused after" : "restore: running after";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (vm.stderr_text().find(needle) != std::string::npos) return true;
    if (vm.process().wait(std::chrono::milliseconds(0)))
      return vm.stderr_text().find(needle) != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// `godwitctl snapshot create --dir DIR [--diff]` against `vm`.
inline CtlResult create_snapshot(Godwit& vm, const std::string& dir, bool diff = false) {
  std::vector<std::string> args{"snapshot", "create", "--dir", dir};
  if (diff) args.push_back("--diff");
  return run_ctl(vm.api_sock(), args, vm.dir());
}

/// How `godwit --restore` loads guest memory.
enum class RestoreMode { eager, lazy };

inline const char* mode_name(RestoreMode m) { return m == RestoreMode::eager ? "eager" : "lazy"; }
/// For GoogleTest's parameter names in test listings.
inline void PrintTo(RestoreMode m, std::ostream* os) { *os << mode_name(m); }

/// Arguments of `godwit --restore DIR` (Godwit adds --serial and --api-sock).
inline std::vector<std::string> restore_args(const std::string& dir, RestoreMode mode,
                                             bool paused) {
  std::vector<std::string> args{"--restore", dir, "--restore-memory", mode_name(mode)};
  if (paused) args.push_back("--paused");
  return args;
}

/// Kills a source VMM the hard way (nothing of it may be needed by a restore)
/// and reaps it; returns false when it did not go away.
inline bool kill_source(Godwit& vm) {
  vm.process().signal(SIGKILL);
  return vm.wait_exit(60s).has_value();
}

/// All guest RAM of a VM, region by region, as read through GET /vm/memory.
struct MemoryDump {
  std::vector<std::pair<uint64_t, std::string>> regions;  ///< {gpa, bytes}
  std::string error;                                      ///< non-empty when the dump failed
};

/// Dumps every RAM region listed by GET /vm, in reads of at most 256 MiB.
inline MemoryDump dump_memory(const Godwit& vm) {
  MemoryDump dump;
  auto api = slow_api(vm);
  auto info = api.request("GET", "/vm");
  if (!info || info->status != 200) {
    dump.error = "GET /vm failed";
    return dump;
  }
  auto j = nlohmann::json::parse(info->body, nullptr, false);
  if (!j.is_object() || !j.contains("memory") || !j["memory"].contains("regions")) {
    dump.error = "GET /vm has no memory regions: " + info->body;
    return dump;
  }
  for (const auto& region : j["memory"]["regions"]) {
    const uint64_t gpa = region["gpa"].get<uint64_t>();
    const uint64_t size = region["size"].get<uint64_t>();
    std::string bytes;
    bytes.reserve(size);
    for (uint64_t done = 0; done < size; done += kMemoryReadChunk) {
      const uint64_t len = std::min(kMemoryReadChunk, size - done);
      auto r = api.request(
          "GET", "/vm/memory?gpa=" + std::to_string(gpa + done) + "&len=" + std::to_string(len));
      if (!r || r->status != 200 || r->body.size() != len) {
        dump.error = "GET /vm/memory gpa " + std::to_string(gpa + done) + " len " +
                     std::to_string(len) + " failed: " +
                     (r ? "HTTP " + std::to_string(r->status) + " (" +
                              std::to_string(r->body.size()) + " bytes)"
                        : r.error().message);
        return dump;
      }
      bytes += r->body;
    }
    dump.regions.emplace_back(gpa, std::move(bytes));
  }
  return dump;
}

/// "" when both dumps hold the same regions with the same bytes; else where
/// they first differ and how many 4 KiB pages differ in all.
inline std::string compare_dumps(const MemoryDump& a, const MemoryDump& b) {
  if (!a.error.empty() || !b.error.empty()) return "dump failed: " + a.error + b.error;
  if (a.regions.size() != b.regions.size())
    return "region counts differ: " + std::to_string(a.regions.size()) + " vs " +
           std::to_string(b.regions.size());
  std::string first;
  uint64_t pages = 0;
  for (size_t r = 0; r < a.regions.size(); ++r) {
    const auto& [gpa_a, bytes_a] = a.regions[r];
    const auto& [gpa_b, bytes_b] = b.regions[r];
    if (gpa_a != gpa_b || bytes_a.size() != bytes_b.size())
      return "region " + std::to_string(r) + " differs in place or size";
    for (size_t page = 0; page < bytes_a.size(); page += 4096) {
      const size_t len = std::min<size_t>(4096, bytes_a.size() - page);
      if (bytes_a.compare(page, len, bytes_b, page, len) == 0) continue;
      ++pages;
      if (first.empty()) {
        size_t o = page;
        while (bytes_a[o] == bytes_b[o]) ++o;
        char buf[128];
        std::snprintf(buf, sizeof buf, "first difference at gpa 0x%llx: 0x%02x vs 0x%02x",
                      static_cast<unsigned long long>(gpa_a + o),
                      static_cast<unsigned>(static_cast<uint8_t>(bytes_a[o])),
                      static_cast<unsigned>(static_cast<uint8_t>(bytes_b[o])));
        first = buf;
      }
    }
  }
  if (pages == 0) return {};
  return first + "; " + std::to_string(pages) + " pages differ";
}

/// Size and hash of every regular file of a directory, to prove a failed
/// restore (or any restore) left the snapshot untouched.
using DirFingerprint = std::map<std::string, std::pair<size_t, size_t>>;

inline DirFingerprint fingerprint(const std::string& dir) {
  DirFingerprint out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string bytes = read_file(entry.path().string());
    out[entry.path().filename().string()] = {bytes.size(), std::hash<std::string>{}(bytes)};
  }
  return out;
}

}  // namespace godwit::test
