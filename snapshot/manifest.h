// The snapshot directory: its manifest (snapshot.json) and how a diff
// snapshot's memory chain is found. A snapshot directory holds
//
//   snapshot.json   the manifest (written last: its presence marks a complete
//                   snapshot), with a checksum over its own content
//   state.bin       the device/vCPU state stream (docs/state-format.md)
//   memory.gmf      guest memory, full or diff (docs/snapshot-memory.md)
//
// A diff's manifest names its parent snapshot directory and the parent's
// memory id; chains are followed through those links, base first. The VM
// configuration is carried as opaque JSON (vmm/snapshot/ gives it meaning),
// so this file needs nothing of the VMM and tools can use it offline.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "snapshot/memory_file_builder.h"
#include "snapshot/memory_file_format.h"
#include "snapshot/memory_image.h"

namespace godwit::snapshot {

inline constexpr const char* kManifestFile = "snapshot.json";
inline constexpr const char* kStateFile = "state.bin";
inline constexpr const char* kMemoryFile = "memory.gmf";
/// The "format" value of every manifest.
inline constexpr const char* kManifestFormat = "godwit-snapshot";
/// Manifest version written; readers accept [kManifestMinVersion, kManifestVersion].
inline constexpr uint32_t kManifestVersion = 1;
inline constexpr uint32_t kManifestMinVersion = 1;
/// Longest chain followed (base + diffs) before giving up on a loop.
inline constexpr size_t kMaxChainLength = 256;

/// The snapshot a diff was taken on top of.
struct ParentRef {
  std::string dir;  ///< absolute path of the parent snapshot directory
  SnapshotId id{};  ///< the parent's memory id (== this diff's memory parent)
};

/// What snapshot.json says.
struct Manifest {
  uint32_t version = kManifestVersion;
  MemoryFileKind kind = MemoryFileKind::full;
  std::string godwit_version;       ///< of the VMM that wrote it
  std::string created;              ///< UTC, ISO 8601
  nlohmann::json vm;                ///< the VM configuration (opaque here)
  uint32_t tsc_khz = 0;             ///< guest TSC rate when saved
  uint64_t state_bytes = 0;         ///< size of state.bin
  SnapshotId memory_id{};           ///< id of memory.gmf
  std::optional<ParentRef> parent;  ///< set for diffs
  uint64_t memory_data_pages = 0;   ///< non-zero pages stored in memory.gmf
  uint64_t memory_file_bytes = 0;   ///< size of memory.gmf
};

/// The manifest as JSON, with "checksum" (XXH3-64 of the rest, hex).
[[nodiscard]] nlohmann::json manifest_to_json(const Manifest& manifest);
/// Parses and checks a manifest (format, version range, checksum, fields);
/// `where` names it in errors.
[[nodiscard]] Result<Manifest> manifest_from_json(const nlohmann::json& json,
                                                  const std::string& where);
/// Writes DIR/snapshot.json atomically (temporary file, fsync, rename, fsync DIR).
[[nodiscard]] Result<void> write_manifest(const std::string& dir, const Manifest& manifest);
/// Reads and checks DIR/snapshot.json.
[[nodiscard]] Result<Manifest> read_manifest(const std::string& dir);

/// False when `value` is a number that T cannot hold exactly: for unsigned
/// integer T a float, a negative number or one above T's maximum. (Plain
/// get<unsigned>() wraps -1 to the maximum and truncates 1.5, which a checked
/// format must refuse.) Non-numbers pass: get<T>() reports the wrong type.
template <typename T>
[[nodiscard]] bool json_fits(const nlohmann::json& value) {
  if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
    if (!value.is_number()) return true;
    if (value.is_number_float()) return false;
    if (!value.is_number_unsigned() && value.get<int64_t>() < 0) return false;
    return value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  } else {
    return true;
  }
}

/// DIR joined with a file name.
[[nodiscard]] std::string snapshot_path(const std::string& dir, const char* file);
/// Parses 32 hex digits into an id.
[[nodiscard]] Result<SnapshotId> parse_snapshot_id(const std::string& hex);

/// The memory files that make up snapshot DIR, base first: DIR's own for a
/// full snapshot; for a diff, its parents' (followed through the manifests,
/// each parent's memory id checked against the child's link) then its own.
[[nodiscard]] Result<std::vector<std::string>> memory_chain(const std::string& dir);

/// Opens the memory of snapshot DIR (memory_chain + MemoryImage::open) and
/// checks that its newest file is the one the manifest names (memory id):
/// a memory.gmf copied in from another snapshot is refused by name.
[[nodiscard]] Result<MemoryImage> open_snapshot_memory(const std::string& dir,
                                                       const Manifest& manifest);

/// Makes snapshot DIR self-contained: merges its chain into a full
/// memory.gmf (atomically replaced) and rewrites the manifest as full. The
/// memory id is kept, so diffs taken on top of DIR still apply.
[[nodiscard]] Result<MemoryFileSummary> merge_snapshot(const std::string& dir);

}  // namespace godwit::snapshot
