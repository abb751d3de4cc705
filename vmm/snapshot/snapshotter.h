// Snapshot creation for a running VMM: PUT /vm/snapshot while the VM is
// paused writes a snapshot directory (snapshot/manifest.h). The first
// snapshot is full; it turns KVM dirty logging on, and from then on the
// pages written by the guest (KVM dirty log) or by the VMM (VMM-side dirty
// bitmap) since the previous snapshot make up a diff snapshot.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/result.h"
#include "snapshot/manifest.h"
#include "snapshot/page_set.h"
#include "vmm/machine.h"

namespace godwit {

/// What PUT /vm/snapshot asks for.
struct SnapshotRequest {
  std::string dir;    ///< absolute path; created, or an existing empty directory
  bool diff = false;  ///< only the pages changed since this process's previous snapshot
};

/// What a snapshot wrote.
struct SnapshotReport {
  std::string dir;
  snapshot::MemoryFileKind kind = snapshot::MemoryFileKind::full;
  std::optional<std::string> parent_dir;  ///< for diffs
  uint64_t data_pages = 0;                ///< non-zero pages written
  uint64_t zero_pages = 0;                ///< pages recorded as zero (index bits only)
  uint64_t memory_bytes = 0;              ///< size of memory.gmf
  uint64_t state_bytes = 0;               ///< size of state.bin
  double duration_ms = 0;
};

/// The parse of a PUT /vm/snapshot body: {"dir": "/abs/path", "type": "full" | "diff"}.
[[nodiscard]] Result<SnapshotRequest> parse_snapshot_request(const nlohmann::json& body);
/// The 200 answer of PUT /vm/snapshot.
[[nodiscard]] nlohmann::json snapshot_report_json(const SnapshotReport& report);

/// How the KVM dirty log of a slot is emptied after it is read.
enum class DirtyLogClear {
  by_get,  ///< classic mode: KVM_GET_DIRTY_LOG clears and write-protects on its own
  manual,  ///< KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is on: KVM_CLEAR_DIRTY_LOG what was read
};

/// ORs the pages written since the previous harvest into `pages`: KVM's dirty
/// log of every RAM slot (read, and in manual mode cleared, so the pages are
/// write-protected again before anyone reads them) and the VMM-side bitmap
/// (taken). Shared by snapshots and live migration (vmm/migration/).
[[nodiscard]] Result<void> harvest_dirty_pages(Machine& machine, snapshot::PageSet& pages,
                                               DirtyLogClear clear = DirtyLogClear::by_get);

/// Takes snapshots of one machine; remembers the previous one for diffs.
/// Call from one thread at a time (the API thread).
class Snapshotter {
 public:
  /// Blocks until every page of guest RAM is resident (a lazy restore may
  /// still be filling it: unfilled pages look like zero pages to the writer).
  using MemoryReady = std::function<Result<void>()>;

  explicit Snapshotter(Machine& machine, MemoryReady memory_ready = {})
      : machine_(machine), memory_ready_(std::move(memory_ready)) {}

  /// Writes a snapshot of the paused VM. Errors carry an errno code for the
  /// API: EBUSY (wrong VM state, directory not empty, no base for a diff),
  /// EINVAL (bad directory), others for I/O failures. On failure every file
  /// it created is removed and no dirty page is forgotten: a later diff
  /// still holds the pages this one would have.
  [[nodiscard]] Result<SnapshotReport> create(const SnapshotRequest& request);

  /// True once a full snapshot opened a diff epoch: KVM dirty logging must
  /// stay on, and pages someone else harvests must be handed to add_dirty().
  [[nodiscard]] bool diff_epoch_open() const { return previous_.has_value(); }
  /// Adds pages harvested elsewhere (a live migration's collects) to the
  /// current diff epoch, so the next diff still holds them. Only while no
  /// snapshot can be taken concurrently (the VMM refuses snapshots during a
  /// migration).
  [[nodiscard]] Result<void> add_dirty(const snapshot::PageSet& pages);

 private:
  /// Collects the guest's and the VMM's dirty pages since the previous snapshot into pending_.
  [[nodiscard]] Result<void> collect_dirty();
  /// Starts a fresh dirty-page epoch after a full snapshot.
  [[nodiscard]] Result<void> reset_dirty();

  Machine& machine_;
  MemoryReady memory_ready_;
  std::optional<snapshot::ParentRef> previous_;  ///< the last snapshot written (diff base)
  std::optional<snapshot::PageSet> pending_;     ///< dirty pages not yet in a written diff
};

}  // namespace godwit
