// The live-migration commands of godwitctl: migrate (PUT /migration/send,
// optionally waiting with a progress line), migrate-status and
// migrate-cancel. The status document is the one of migration/status_json.h;
// godwitctl reads it as JSON only (it does not link the migration engine) and
// tolerates missing keys. The formatting functions are pure so tests can
// check them line by line.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tools/godwitctl/command.h"

namespace godwit::ctl {

/// Adds migrate, migrate-status and migrate-cancel to `table`.
void append_migrate_commands(std::vector<Command>& table);

/// "--max-bandwidth": plain bytes per second, or with a binary suffix K, M or G
/// (either case): "100M" = 104857600.
[[nodiscard]] Result<uint64_t> parse_bandwidth(std::string_view text);

/// "--channels": 0..64 (the VMM's kMaxChannels; godwitctl does not link
/// the migration library, so the limit is repeated and the VMM checks again).
[[nodiscard]] Result<uint32_t> parse_channels(std::string_view text);

/// "--compress": "none", "zstd" or "zstd:LEVEL" with LEVEL 1..19; returns
/// the text unchanged for the request body (the VMM parses it again).
[[nodiscard]] Result<std::string> check_compression(std::string_view text);

/// Whether `state` ends a migration (completed, failed, cancelled).
[[nodiscard]] bool is_terminal_state(std::string_view state);

/// One progress line (no newline), e.g.
/// "[========>           ]  45.0%  460.8 MiB sent, 563.2 MiB left, 117.0 MB/s,
///  dirty 2500 pages/s, iteration 4, ETA 5s, active" (on one line).
/// Percent = transferred / (transferred + remaining) (100% once completed);
/// ETA = remaining / throughput, "-" while the throughput is 0. With multifd
/// channels, "4 channels zstd:3 ratio 3.91x, " comes before the ETA
/// (ratio = uncompressed_bytes / multifd_bytes; only when compressing).
[[nodiscard]] std::string format_migration_progress(const nlohmann::json& status);

/// The block printed when a waited-for migration ends: state, total time,
/// downtime and its breakdown, transferred bytes, pages, iterations, and the
/// multifd channels and compression ratio when there were channels.
[[nodiscard]] std::string format_migration_result(const nlohmann::json& status);

/// The text of `godwitctl migrate-status`: every key of the status document
/// in human units, then any key this godwitctl does not know as it is.
[[nodiscard]] std::string format_migration_status(const nlohmann::json& status);

/// A duration for humans: "850 ms", "5.3 s", "2m05s", "1h02m".
[[nodiscard]] std::string format_duration_ms(uint64_t ms);

}  // namespace godwit::ctl
