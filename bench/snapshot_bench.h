// Snapshot benchmark: how long a full snapshot takes to write and how soon a
// VM restored from it runs again, eager and lazy, for guests with 90% of
// their RAM touched. Each run boots memtouch.img (tests/guests/,
// docs/guests.md) in a real godwit, pauses it once the touch is done, takes
// a full snapshot through PUT /vm/snapshot, stops it, then restores the
// snapshot twice with `godwit --restore` (eager, then lazy memory) and checks
// that each restored guest keeps running (a new heartbeat line). Restore
// times are taken from fork/exec to the VMM's "restore: running after" log
// line, beside the VMM's own figure. Numbers only, printed as JSON; nothing
// is asserted.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace godwit::bench {

/// What to run; the defaults take about five minutes here.
struct SnapshotBenchOptions {
  std::string build_dir = "build";      ///< holds bin/godwit and guests/memtouch.img
  std::string parent_dir = "/var/tmp";  ///< a private directory for the snapshots goes here
  std::vector<uint32_t> sizes_mib = {1024, 4096};  ///< guest RAM sizes, MiB
  int runs = 3;                                    ///< runs per size; medians are reported
  double budget_s = 300;        ///< a size whose remaining runs would pass this total gets 1 run
  uint32_t touch_percent = 90;  ///< RAM made non-zero (16 MiB of it below the touched range)
  uint32_t dirty_mib = 16;      ///< re-dirtied per guest period after the touch
  uint32_t period_ms = 250;     ///< guest period (heartbeat line and dirtying)
};

/// Runs every size and returns the results (or {"error": ...}) as JSON.
[[nodiscard]] nlohmann::json run_snapshot_bench(const SnapshotBenchOptions& options);

}  // namespace godwit::bench
