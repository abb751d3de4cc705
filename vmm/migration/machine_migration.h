// A Machine behind the live-migration engine (migration/engine.h):
//
//   source (MachineSourceVm)                 destination (MachineDestinationVm)
//   ------------------------                 ----------------------------------
//   ram[0]      RamMigratable over            ram[0]      RamMigratable (loader only)
//               KvmDirtyPages (KVM dirty log
//               + VMM bitmap)
//   machine[0]  MachineStateMigratable:       machine[0]  MachineStateMigratable:
//               stop-copy only, the payload              parses the stream,
//               is the snapshot's state.bin              Machine::restore_state
//               stream (no RAM)
//
// The destination Machine is built with BootMode::skip and never started
// before GO; start() runs it.
//
// Dirty tracking (bitmap mode): start_dirty_tracking() turns KVM dirty
// logging on (the Machine only changes memslot flags while paused, so a
// running VM is paused for that moment) and, when the host offers it,
// enables KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 so that a collect re-protects
// exactly the pages it harvested with KVM_CLEAR_DIRTY_LOG before RamMigratable
// reads them. stop_dirty_tracking() turns manual protect off again and turns
// logging off, except while a snapshot diff epoch needs it (the snapshotter
// assumes logging stays on after its first full snapshot); every page a
// migration harvests is also handed to that epoch (SourceHooks), so a later
// diff snapshot still holds it.
//
// Ring mode is refused: the Machine creates its VM without a KVM dirty ring
// and keeps its vCPUs private, so there is no ring to harvest.
//
// Throttling (auto-converge): a thread time-slices the vCPUs in 20 ms
// periods, paused for percent% of each period. running() still answers true
// while the throttle holds the VM paused, and stop() ends the throttle before
// it pauses for the switchover, so the engine never mistakes a throttle pause
// for a stopped VM.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/result.h"
#include "migration/engine.h"
#include "migration/migratable.h"
#include "migration/ram_migratable.h"
#include "snapshot/page_set.h"
#include "vmm/machine.h"
#include "vmm/snapshot/snapshotter.h"

namespace godwit {

/// What the migration code needs from the rest of the VMM (the snapshotter);
/// every member may be empty.
struct SourceHooks {
  /// True while dirty logging must stay on after a migration (a snapshot
  /// diff epoch is open).
  std::function<bool()> keep_dirty_logging;
  /// Receives every page set a migration harvests while keep_dirty_logging()
  /// is true (for the diff epoch).
  std::function<Result<void>(const snapshot::PageSet&)> harvested;
};

/// RAM dirty pages of a Machine: KVM_GET_DIRTY_LOG of every RAM slot (then
/// KVM_CLEAR_DIRTY_LOG of the harvested bits in manual-protect mode) plus the
/// VMM-side bitmap, as harvest_dirty_pages() does for snapshots.
class KvmDirtyPages final : public migration::DirtyPageSource {
 public:
  KvmDirtyPages(Machine& machine, DirtyLogClear clear, SourceHooks hooks = {})
      : machine_(machine), clear_(clear), hooks_(std::move(hooks)) {}
  [[nodiscard]] Result<void> collect(snapshot::PageSet& pages) override;

 private:
  Machine& machine_;
  DirtyLogClear clear_;
  SourceHooks hooks_;
};

/// The whole machine state except RAM as one section, "machine[0]" v1. Its
/// payload is exactly the state stream a snapshot writes to state.bin
/// (migration/machine_state_codec.h), so both share one format and one
/// decoder with its checks.
class MachineStateMigratable final : public migration::Migratable {
 public:
  static constexpr const char* kKind = "machine";
  static constexpr uint32_t kVersion = 1;
  /// The stop-copy estimate: this much per vCPU plus this much for the rest.
  static constexpr uint64_t kEstimateBytes = 64 << 10;

  explicit MachineStateMigratable(Machine& machine) : machine_(machine) {}

  [[nodiscard]] migration::SectionKey key() const override { return {kKind, 0}; }
  [[nodiscard]] uint32_t version() const override { return kVersion; }
  /// Stop-copy only: nothing can move while the vCPUs run.
  [[nodiscard]] Result<migration::PendingData> pending(migration::PendingQuery query) override;
  /// Machine::save_state without RAM (the VM is stopped), encoded.
  [[nodiscard]] Result<void> save_complete(migration::SectionWriter& out) override;
  /// Decodes the stream and applies it with Machine::restore_state (no RAM).
  [[nodiscard]] Result<void> load(migration::SectionReader& in, uint32_t version) override;
  [[nodiscard]] Result<void> cleanup(bool success) override;

  /// Whether load() has applied a state.
  [[nodiscard]] bool loaded() const { return loaded_; }

 private:
  Machine& machine_;
  bool loaded_ = false;
};

/// The guest TSC rate (KVM_GET_TSC_KHZ), or 0 ("unknown", not compared)
/// when it cannot be read. Read it before the vCPUs run: a vCPU ioctl waits
/// for the vCPU's KVM_RUN to return, which a running guest may not do soon.
[[nodiscard]] uint32_t migration_tsc_khz(Machine& machine);
/// What both ends describe: layout, vCPUs, TSC rate, ram[0] and machine[0].
[[nodiscard]] migration::wire::VmDescription describe_machine(Machine& machine, uint32_t tsc_khz);

/// A running (or paused) Machine as a migration source.
class MachineSourceVm final : public migration::SourceVm {
 public:
  /// Throttle period (auto-converge time slicing).
  static constexpr std::chrono::milliseconds kThrottlePeriod{20};

  /// `ram` tunes the RAM section; keep skip_unpopulated false while a lazy
  /// restore may still be filling guest memory. Construct it before the
  /// Machine starts: it reads the TSC rate once (migration_tsc_khz).
  MachineSourceVm(Machine& machine, SourceHooks hooks = {}, migration::RamOptions ram = {});
  /// Stops the throttle thread (leaving the VM as it found it).
  ~MachineSourceVm() override;
  MachineSourceVm(const MachineSourceVm&) = delete;
  MachineSourceVm& operator=(const MachineSourceVm&) = delete;

  [[nodiscard]] migration::wire::VmDescription describe() override;
  [[nodiscard]] Result<void> start_dirty_tracking(migration::DirtyTracking mode) override;
  void stop_dirty_tracking() override;
  /// ram[0] and machine[0]. They stay valid after stop_dirty_tracking()
  /// (the engine cleans them up after it) until the next start.
  [[nodiscard]] std::vector<migration::Migratable*> migratables() override;
  [[nodiscard]] bool running() override;
  [[nodiscard]] Result<void> stop() override;
  [[nodiscard]] Result<void> resume() override;
  void set_throttle(uint32_t percent) override;

 private:
  /// Runs `change` with the vCPUs parked: directly when the VM is paused or
  /// created, else between a pause() and a resume().
  [[nodiscard]] Result<void> while_paused(const std::function<Result<void>()>& change);
  void throttle_loop();
  void stop_throttle();

  Machine& machine_;
  const uint32_t tsc_khz_;
  SourceHooks hooks_;
  migration::RamOptions ram_options_;
  MachineStateMigratable state_;
  std::unique_ptr<KvmDirtyPages> dirty_;
  std::unique_ptr<migration::RamMigratable> ram_;
  bool tracking_ = false;
  bool turned_logging_on_ = false;  ///< this tracking turned KVM logging on
  bool manual_protect_ = false;     ///< this tracking enabled manual protect

  std::mutex throttle_mutex_;  ///< throttle_*; held across the throttle's pause()
  std::condition_variable throttle_changed_;
  uint32_t throttle_percent_ = 0;
  bool throttle_quit_ = false;
  bool throttle_paused_ = false;  ///< the throttle holds the VM paused right now
  std::thread throttle_thread_;
};

/// A fresh Machine (BootMode::skip, never started) as a migration destination.
class MachineDestinationVm final : public migration::DestinationVm {
 public:
  explicit MachineDestinationVm(Machine& machine, StartMode start = StartMode::running);

  [[nodiscard]] migration::wire::VmDescription describe() override;
  [[nodiscard]] std::vector<migration::Migratable*> migratables() override;
  /// Fails unless machine[0] has been loaded.
  [[nodiscard]] Result<void> finish_load() override;
  /// Starts the vCPUs (running, or parked with StartMode::paused).
  [[nodiscard]] Result<void> start() override;
  /// The Machine's RAM, prefaulted by the engine while pages arrive.
  [[nodiscard]] GuestMemory* ram() override;

 private:
  /// The destination never collects: RAM only arrives.
  class NoDirtyPages final : public migration::DirtyPageSource {
   public:
    [[nodiscard]] Result<void> collect(snapshot::PageSet&) override { return {}; }
  };

  Machine& machine_;
  StartMode start_;
  const uint32_t tsc_khz_;
  NoDirtyPages no_dirty_;
  migration::RamMigratable ram_;
  MachineStateMigratable state_;
};

}  // namespace godwit
