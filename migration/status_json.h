// The JSON form of a migration's status (GET /migration/status) and the parse
// of a send request (PUT /migration/send). The API layer (vmm/api) only moves
// these documents around; this file is the one place that knows their keys,
// so the VMM, godwitctl and docs/api.md agree on them.
//
// Status document (every key always present except "error"):
//
//   {
//     "state": "active",                 R1 name (to_string(MigrationState))
//     "role": "source",                  "none" | "source" | "destination"
//     "uri": "tcp:10.0.0.2:4444",
//     "error": "stream error: ...",      omitted when empty; always set when failed (R56)
//     "total_time_ms": 5321,             start -> now, or -> end once terminal
//     "setup_time_ms": 12,               start -> active
//     "downtime_ms": 87,                 vCPUs stopped (source) -> running (destination)
//     "downtime": {                      parts of downtime_ms, fractional ms (us / 1000)
//       "final_sync_ms": 1.234,          vCPU stop + final dirty sync
//       "last_ram_ms": 20.5,             sending the last RAM delta
//       "device_state_ms": 3.1,          saving and sending the device state
//       "destination_load_ms": 40.0,     destination: loading what arrived
//       "resume_ms": 0.8                 destination: GO -> vCPUs running
//     },
//     "expected_downtime_ms": 90,
//     "transferred_bytes": 1073741824,   stream bytes, headers included
//     "remaining_bytes": 5242880,        latest pending total (R11, R58)
//     "normal_pages": 261000,
//     "zero_pages": 1000,
//     "throughput_bytes_per_s": 117000000,
//     "mbps": 936.0,                     throughput * 8 / 1e6, as QEMU reports it
//     "dirty_pages_per_s": 2500,
//     "iterations": 4,                   dirty syncs, the final one included
//     "throttle_percent": 0,             auto-converge
//     "dirty_tracking": "bitmap",        "bitmap" | "ring"
//     "downtime_limit_ms": 300,
//     "channels": 4,                     multifd channels (0: pages on the main channel)
//     "compression": "zstd:1",           "none" | "zstd:LEVEL" (to_string(Compression))
//     "multifd_bytes": 268435456,        sent on the multifd channels (part of transferred)
//     "uncompressed_bytes": 1073741824   page bytes they carried, before compression
//   }
//
// Send request (PUT /migration/send):
//
//   {"uri": "tcp:HOST:PORT" | "unix:PATH",   required
//    "downtime_limit_ms": 300,               unsigned, 1..600000
//    "max_bandwidth": 104857600,             unsigned bytes/s, >= 4096; absent = unlimited
//    "auto_converge": false,
//    "dirty_tracking": "bitmap" | "ring",
//    "channels": 4,                          unsigned, 0..kMaxChannels (64); 0 = no multifd
//    "compression": "none" | "zstd" | "zstd:LEVEL"}   level 1..19 ("zstd" = 1); needs
//                                            channels >= 1
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "migration/status.h"

namespace godwit::migration {

/// The status document above.
[[nodiscard]] nlohmann::json to_json(const MigrationStatus& status);

/// Reads a send request: a JSON object with the members above, nothing else.
/// Wrong types, negative or fractional numbers, unknown members and a missing
/// "uri" fail with a message naming the member; then validate() runs. Every
/// error carries EINVAL, so the API answers it with 400 (api/vm_control.h).
[[nodiscard]] Result<SendOptions> parse_send_request(const nlohmann::json& request);

}  // namespace godwit::migration
