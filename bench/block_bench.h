// Block-device benchmark: guest-to-file virtio-blk throughput and IOPS with
// 4 KiB and 64 KiB requests, writes and reads, through the page cache and
// with direct=on (O_DIRECT). Each run boots blkbench.img (tests/guests/,
// docs/guests.md), whose ring-3 loop keeps `depth` requests in flight and
// reports the TSC cycles its `count` requests took; rates come from that
// delta and the host TSC frequency (no TSC scaling: the guest's TSC runs at
// the host's rate). Numbers only, printed as JSON; nothing is asserted.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace godwit::bench {

/// What to run; the defaults keep the whole benchmark under about a minute here.
struct BlockBenchOptions {
  std::string build_dir = "build";  ///< holds bin/godwit and guests/blkbench.img
  std::string disk_dir;             ///< where the disk file goes; empty: build_dir
  int runs = 3;                     ///< runs per case; the median is reported
  uint32_t count = 20000;           ///< requests per run through the page cache
  uint32_t direct_count = 10000;    ///< requests per run with direct=on (slower)
  uint32_t depth = 16;              ///< requests in flight
  uint32_t span_mib = 64;           ///< disk size, swept sequentially by every run
};

/// Runs every case and returns the results (or {"error": ...}) as JSON.
[[nodiscard]] nlohmann::json run_block_bench(const BlockBenchOptions& options);

}  // namespace godwit::bench
