// A sample migration status shared by the status-document test and the
// godwitctl migrate test: every field set, most to a distinct value, multifd
// included, so a key that to_json drops or a row that godwitctl forgets
// shows up in either test.
#pragma once

#include "migration/status.h"

namespace godwit::test {

/// A source migration to tcp:10.0.0.2:4444 in `state`: 1 GiB sent, 5 MiB
/// left, 4 iterations, downtime 87 ms in five parts, 4 multifd channels with
/// zstd level 3 (1000 MiB of pages sent as 256 MiB).
inline migration::MigrationStatus sample_migration_status(
    migration::MigrationState state = migration::MigrationState::active) {
  migration::MigrationStatus s;
  s.state = state;
  s.role = migration::MigrationRole::source;
  s.uri = "tcp:10.0.0.2:4444";
  s.total_time_ms = 5321;
  s.setup_time_ms = 12;
  s.downtime_ms = 87;
  s.downtime = {.final_sync_us = 1234,
                .last_ram_us = 20500,
                .device_state_us = 3100,
                .destination_load_us = 40000,
                .resume_us = 800};
  s.expected_downtime_ms = 90;
  s.transferred_bytes = 1073741824;
  s.remaining_bytes = 5242880;
  s.normal_pages = 261000;
  s.zero_pages = 1000;
  s.throughput_bytes_per_s = 117000000;
  s.dirty_pages_per_s = 2500;
  s.iterations = 4;
  s.throttle_percent = 20;
  s.dirty_tracking = migration::DirtyTracking::ring;
  s.downtime_limit_ms = 300;
  s.channels = 4;
  s.compression = {migration::Codec::zstd, 3};
  s.multifd_bytes = 268435456;
  s.uncompressed_bytes = 1048576000;
  return s;
}

}  // namespace godwit::test
