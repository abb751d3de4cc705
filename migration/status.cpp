#include "migration/status.h"

#include <array>
#include <utility>

namespace godwit::migration {
namespace {

constexpr std::array<std::pair<MigrationState, std::string_view>, 15> kStateNames = {{
    {MigrationState::none, "none"},
    {MigrationState::setup, "setup"},
    {MigrationState::active, "active"},
    {MigrationState::device, "device"},
    {MigrationState::pre_switchover, "pre-switchover"},
    {MigrationState::wait_unplug, "wait-unplug"},
    {MigrationState::postcopy_device, "postcopy-device"},
    {MigrationState::postcopy_active, "postcopy-active"},
    {MigrationState::postcopy_paused, "postcopy-paused"},
    {MigrationState::postcopy_recover_setup, "postcopy-recover-setup"},
    {MigrationState::postcopy_recover, "postcopy-recover"},
    {MigrationState::completed, "completed"},
    {MigrationState::failed, "failed"},
    {MigrationState::cancelling, "cancelling"},
    {MigrationState::cancelled, "cancelled"},
}};

}  // namespace

std::string_view to_string(MigrationState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<MigrationState> parse_migration_state(std::string_view name) {
  for (const auto& [s, n] : kStateNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

const std::initializer_list<MigrationState>& all_migration_states() {
  static const std::initializer_list<MigrationState> kAll = {
      MigrationState::none,
      MigrationState::setup,
      MigrationState::active,
      MigrationState::device,
      MigrationState::pre_switchover,
      MigrationState::wait_unplug,
      MigrationState::postcopy_device,
      MigrationState::postcopy_active,
      MigrationState::postcopy_paused,
      MigrationState::postcopy_recover_setup,
      MigrationState::postcopy_recover,
      MigrationState::completed,
      MigrationState::failed,
      MigrationState::cancelling,
      MigrationState::cancelled,
  };
  return kAll;
}

bool is_terminal(MigrationState state) {
  return state == MigrationState::completed || state == MigrationState::failed ||
         state == MigrationState::cancelled;
}

bool cancel_allowed(MigrationState state) {
  switch (state) {
    case MigrationState::setup:
    case MigrationState::active:
    case MigrationState::device:
    case MigrationState::pre_switchover:
    case MigrationState::wait_unplug:
      return true;
    default:
      return false;
  }
}

std::string_view to_string(MigrationRole role) {
  switch (role) {
    case MigrationRole::none:
      return "none";
    case MigrationRole::source:
      return "source";
    case MigrationRole::destination:
      return "destination";
  }
  return "unknown";
}

std::string_view to_string(DirtyTracking tracking) {
  return tracking == DirtyTracking::ring ? "ring" : "bitmap";
}

std::optional<DirtyTracking> parse_dirty_tracking(std::string_view name) {
  if (name == "bitmap") return DirtyTracking::bitmap;
  if (name == "ring") return DirtyTracking::ring;
  return std::nullopt;
}

Result<void> validate(const SendOptions& options) {
  if (options.uri.empty()) return fail("migration uri is empty (tcp:HOST:PORT or unix:PATH)");
  if (options.downtime_limit_ms < 1 || options.downtime_limit_ms > 600000) {
    return fail("downtime limit " + std::to_string(options.downtime_limit_ms) +
                " ms is out of range 1..600000");
  }
  if (options.max_bandwidth_bytes_per_s && *options.max_bandwidth_bytes_per_s < 4096) {
    return fail("max bandwidth " + std::to_string(*options.max_bandwidth_bytes_per_s) +
                " B/s is below the minimum of 4096 B/s");
  }
  if (options.channels > kMaxChannels) {
    return fail("channels " + std::to_string(options.channels) + " is out of range 0.." +
                std::to_string(kMaxChannels));
  }
  if (options.compression.codec != Codec::none && options.channels == 0) {
    return fail("compression " + to_string(options.compression) +
                " needs multifd channels (channels >= 1)");
  }
  if (options.compression.codec == Codec::zstd &&
      (options.compression.level < 1 || options.compression.level > 19)) {
    return fail("zstd level " + std::to_string(options.compression.level) +
                " is out of range 1..19");
  }
  return {};
}

std::string to_string(const Compression& compression) {
  switch (compression.codec) {
    case Codec::none:
      return "none";
    case Codec::zstd:
      return "zstd:" + std::to_string(compression.level);
  }
  return "codec " + std::to_string(static_cast<int>(compression.codec));
}

Result<Compression> parse_compression(std::string_view text) {
  if (text == "none") return Compression{};
  if (text == "zstd") return Compression{Codec::zstd, 1};
  if (text.starts_with("zstd:")) {
    const std::string_view digits = text.substr(5);
    int level = 0;
    bool ok = !digits.empty() && digits.size() <= 2;
    for (char c : digits) {
      if (c < '0' || c > '9') ok = false;
      level = level * 10 + (c - '0');
    }
    if (!ok || level < 1 || level > 19) {
      return fail("compression \"" + std::string(text) + "\": zstd level must be 1..19");
    }
    return Compression{Codec::zstd, level};
  }
  return fail("compression \"" + std::string(text) + "\": expected none, zstd or zstd:LEVEL");
}

}  // namespace godwit::migration
