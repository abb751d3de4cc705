// What a migration reports (migration-requirements.md R1, R56, R58) and the
// options a user starts one with. Plain values: the engine fills them, the
// API serialises them (to_json), godwitctl prints them.
//
// States are strings on every interface (R1): adding one never renumbers
// anything. The enum order here is internal only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace godwit::migration {

/// Migration states (R1). Precopy reaches none, setup, active, device,
/// completed, failed, cancelling, cancelled; the postcopy ones are reserved
/// for the postcopy issue and listed so the vocabulary is complete.
enum class MigrationState {
  none,
  setup,
  active,
  device,
  pre_switchover,
  wait_unplug,
  postcopy_device,
  postcopy_active,
  postcopy_paused,
  postcopy_recover_setup,
  postcopy_recover,
  completed,
  failed,
  cancelling,
  cancelled,
};

/// The R1 name: "none", "setup", "pre-switchover", "postcopy-device", ...
[[nodiscard]] std::string_view to_string(MigrationState state);
/// The state named `name`, or nullopt.
[[nodiscard]] std::optional<MigrationState> parse_migration_state(std::string_view name);
/// Every state, in the order above (for tests enumerating the vocabulary).
[[nodiscard]] const std::initializer_list<MigrationState>& all_migration_states();
/// completed, failed, cancelled.
[[nodiscard]] bool is_terminal(MigrationState state);
/// Whether migrate-cancel is accepted (R8): setup, active, pre-switchover,
/// device, wait-unplug. Refused in postcopy states and terminal ones.
[[nodiscard]] bool cancel_allowed(MigrationState state);

/// Which side of a migration a VMM is.
enum class MigrationRole { none, source, destination };
[[nodiscard]] std::string_view to_string(MigrationRole role);

/// How RAM dirty pages are found on the source.
enum class DirtyTracking { bitmap, ring };
[[nodiscard]] std::string_view to_string(DirtyTracking tracking);
[[nodiscard]] std::optional<DirtyTracking> parse_dirty_tracking(std::string_view name);

/// How multifd channels compress page data.
enum class Codec : uint8_t { none = 0, zstd = 1 };

/// A codec and its level ("none", "zstd", "zstd:LEVEL").
struct Compression {
  Codec codec = Codec::none;
  int level = 1;  ///< zstd: 1..19 (1, the default, is the fastest)

  friend bool operator==(const Compression&, const Compression&) = default;
};
/// "none", or "zstd:LEVEL".
[[nodiscard]] std::string to_string(const Compression& compression);
/// Parses "none", "zstd" (level 1) or "zstd:LEVEL" (1..19); errors say what is wrong.
[[nodiscard]] Result<Compression> parse_compression(std::string_view text);

/// Most multifd channels one migration may open.
inline constexpr uint32_t kMaxChannels = 64;

/// Where the downtime went (all in microseconds; 0 when not reached).
struct DowntimeBreakdown {
  uint64_t final_sync_us = 0;        ///< vCPU stop + final exact query (dirty harvest)
  uint64_t last_ram_us = 0;          ///< sending the last RAM delta
  uint64_t device_state_us = 0;      ///< saving and sending the device state
  uint64_t destination_load_us = 0;  ///< destination: COMPLETE received -> LOADED sent
  uint64_t resume_us = 0;            ///< destination: GO received -> vCPUs running
};

/// One migration's figures. Byte counts are of the stream (headers included)
/// unless they say pages.
struct MigrationStatus {
  MigrationState state = MigrationState::none;
  MigrationRole role = MigrationRole::none;
  std::string uri;    ///< "tcp:HOST:PORT" / "unix:PATH"
  std::string error;  ///< set whenever state == failed (R56), else may hold a cancel reason
  uint64_t total_time_ms = 0;         ///< start -> now, or -> end once terminal
  uint64_t setup_time_ms = 0;         ///< start -> active
  uint64_t downtime_ms = 0;           ///< vCPUs stopped on the source -> running on the destination
  DowntimeBreakdown downtime;         ///< parts of downtime_ms
  uint64_t expected_downtime_ms = 0;  ///< remaining / bandwidth, while active
  uint64_t transferred_bytes = 0;
  uint64_t remaining_bytes = 0;         ///< total of the latest pending query (R11)
  uint64_t normal_pages = 0;            ///< pages sent with data
  uint64_t zero_pages = 0;              ///< pages sent as zero markers
  uint64_t throughput_bytes_per_s = 0;  ///< over the latest window
  uint64_t dirty_pages_per_s = 0;       ///< pages dirtied per second, latest sync
  uint32_t iterations = 0;              ///< dirty syncs (exact queries), the final one included
  uint32_t throttle_percent = 0;        ///< auto-converge: share of vCPU time taken away
  DirtyTracking dirty_tracking = DirtyTracking::bitmap;
  uint32_t downtime_limit_ms = 0;
  uint32_t channels = 0;       ///< multifd channels (0: pages travel on the main channel)
  Compression compression;     ///< of the multifd channels
  uint64_t multifd_bytes = 0;  ///< bytes sent on the multifd channels (part of transferred_bytes)
  uint64_t uncompressed_bytes = 0;  ///< page bytes those channels carried, before compression
};

/// What `godwitctl migrate` / PUT /migration/send asks for.
struct SendOptions {
  std::string uri;                                    ///< "tcp:HOST:PORT" or "unix:PATH"
  uint32_t downtime_limit_ms = 300;                   ///< R16
  std::optional<uint64_t> max_bandwidth_bytes_per_s;  ///< rate limit; none = unlimited
  bool auto_converge = false;                         ///< throttle vCPUs when not converging
  DirtyTracking dirty_tracking = DirtyTracking::bitmap;
  /// Extra connections that carry RAM pages in parallel (0: none, pages go
  /// on the main channel); at most kMaxChannels.
  uint32_t channels = 0;
  /// Compression on those channels (needs channels >= 1).
  Compression compression;
};

/// Checks ranges: downtime limit 1..600000 ms, bandwidth >= 4096 B/s when
/// given, channels 0..kMaxChannels, compression only with channels, a uri that parse_address()
/// accepts (checked by the caller).
[[nodiscard]] Result<void> validate(const SendOptions& options);

}  // namespace godwit::migration
