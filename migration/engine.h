// The live-migration engine: MigrationSource runs a precopy migration of a
// SourceVm to a destination address; MigrationDestination receives one into
// a DestinationVm. Both are independent of KVM: the VMM adapts its Machine to
// SourceVm / DestinationVm (vmm/migration/), tests use fakes. The protocol is
// drawn in migration/wire.h, the loop's decisions are migration/precopy_policy.h.
//
// Source threads (R4):
//   - the migration thread: the only writer of the state; connects, sets up,
//     runs the precopy loop, switches over, cleans up;
//   - the return-path reader: reads and validates every destination message
//     (R57) and only records it (PONG value, ACK count, LOADED, RESUMED,
//     ERROR text, read failure) for the migration thread;
//   - callers (API thread): start(), status(), cancel() — cancel only sets a
//     flag that the migration thread acts on.
//
// Source states: none -> setup -> active -> device -> completed, and from
// setup/active/device -> failed or -> cancelling -> cancelled. Every change
// is a compare-and-set from the expected state; an illegal one is a bug and
// fails the migration (never a silent overwrite).
//
// Failure anywhere before GO is sent (cancel, connect/setup error, lost
// connection, corrupted stream, destination ERROR): the destination was never
// told to run, so the source resumes its vCPUs if it stopped them, cleans
// every Migratable up and can migrate again. After GO the source never
// resumes (the guest may be running on the destination): it stays paused.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "migration/migratable.h"
#include "migration/status.h"
#include "migration/transport.h"
#include "migration/wire.h"

namespace godwit::migration {

/// The source VM as the engine drives it. Called from the migration thread.
class SourceVm {
 public:
  virtual ~SourceVm() = default;
  /// What the destination must match (layout, vCPUs, TSC, devices).
  [[nodiscard]] virtual wire::VmDescription describe() = 0;
  /// Turns dirty tracking on in `mode` (before the first RAM round); fails
  /// with a reason when the mode cannot be used.
  [[nodiscard]] virtual Result<void> start_dirty_tracking(DirtyTracking mode) = 0;
  /// Turns it off again (end of migration, any outcome).
  virtual void stop_dirty_tracking() = 0;
  /// The pieces to migrate, in stream order; valid until stop_dirty_tracking().
  [[nodiscard]] virtual std::vector<Migratable*> migratables() = 0;
  /// Whether the vCPUs run now.
  [[nodiscard]] virtual bool running() = 0;
  /// Stops the vCPUs and device work (switchover).
  [[nodiscard]] virtual Result<void> stop() = 0;
  /// Restarts what stop() stopped (failure before GO).
  [[nodiscard]] virtual Result<void> resume() = 0;
  /// Auto-converge: take `percent` (0..99) of the vCPUs' run time away.
  virtual void set_throttle(uint32_t percent) { (void)percent; }
};

/// The destination VM: fresh, never run, memory zeroed.
class DestinationVm {
 public:
  virtual ~DestinationVm() = default;
  [[nodiscard]] virtual wire::VmDescription describe() = 0;
  /// The loaders, one per section key the source will send.
  [[nodiscard]] virtual std::vector<Migratable*> migratables() = 0;
  /// Every section has arrived (COMPLETE): finish loading, check it all.
  [[nodiscard]] virtual Result<void> finish_load() = 0;
  /// GO: run the guest.
  [[nodiscard]] virtual Result<void> start() = 0;
  /// The RAM pages will be written into, prefaulted by the engine while the
  /// first round arrives (faulting fresh memory in page by page costs ~11 us
  /// a page on the PVM hosts, ten times a batched populate); null: none.
  [[nodiscard]] virtual GuestMemory* ram() { return nullptr; }
};

/// Settings of the engine beyond what the user gives per migration (tests
/// and the VMM tune them).
struct EngineTuning {
  std::chrono::milliseconds connect_timeout{10000};
  /// Longest wait for SETUP_ACCEPT, LOADED, RESUMED, GO.
  std::chrono::milliseconds reply_timeout{30000};
  /// A frame whose write makes no headway for this long (the destination
  /// stopped reading but did not close) fails the migration.
  std::chrono::milliseconds send_stall_timeout{30000};
  /// How often the source PINGs the destination while precopy runs (the
  /// PONGs show the return path is alive; tests shorten it to stress R4).
  std::chrono::milliseconds ping_interval{1000};
  /// Bandwidth measurement window (R16).
  std::chrono::milliseconds bandwidth_window{100};
  /// Request per-device switchover ACKs (R26, R34).
  bool switchover_ack = false;
  /// The switchover-ack mode this side announces (tests force mismatches, R34).
  wire::SwitchoverAckMode switchover_ack_mode = wire::SwitchoverAckMode::off;
  /// Multifd: pages per packet (zero pages included), at most 1024.
  uint32_t multifd_pages_per_packet = 128;
  /// Multifd test hook (destination): called on a receiver thread before it
  /// applies a packet of `round` (tests slow one channel down).
  std::function<void(uint32_t channel, uint32_t round)> multifd_before_apply;
  /// Called on every state change, on the migration thread (tests trace R4).
  std::function<void(MigrationState from, MigrationState to)> on_transition;
};

/// Drives migrations out of one SourceVm, one at a time.
class MigrationSource {
 public:
  explicit MigrationSource(SourceVm& vm, EngineTuning tuning = {});
  /// Cancels a running migration and waits for its thread.
  ~MigrationSource();
  MigrationSource(const MigrationSource&) = delete;
  MigrationSource& operator=(const MigrationSource&) = delete;

  /// Starts a migration in the background. Fails when one is running, when
  /// one already completed (the guest runs elsewhere) or the options are
  /// invalid (nothing changes then).
  [[nodiscard]] Result<void> start(const SendOptions& options);
  /// A copy of the current status; safe from any thread.
  [[nodiscard]] MigrationStatus status() const;
  /// Asks the running migration to stop (R8: refused outside setup, active,
  /// device); it ends in `cancelled` and the guest resumes (R10).
  [[nodiscard]] Result<void> cancel();
  /// Waits until the migration reaches a terminal state; returns its status.
  MigrationStatus wait();

 private:
  class Run;
  SourceVm& vm_;
  EngineTuning tuning_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  MigrationStatus status_;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<Run> run_;
  std::thread thread_;
  friend class Run;
};

/// Receives one migration into a DestinationVm.
class MigrationDestination {
 public:
  explicit MigrationDestination(DestinationVm& vm, EngineTuning tuning = {});
  ~MigrationDestination();
  MigrationDestination(const MigrationDestination&) = delete;
  MigrationDestination& operator=(const MigrationDestination&) = delete;

  /// Starts listening; returns the bound address (the real port for tcp:...:0).
  [[nodiscard]] Result<Address> listen(const Address& address);
  /// Accepts the source, receives, loads, and on GO starts the guest. Blocks
  /// until the guest runs (success) or the migration failed (the guest was
  /// never started; the error says why and was sent to the source as ERROR).
  [[nodiscard]] Result<void> run();
  /// Makes run() fail promptly ("aborted"); safe from any thread.
  void abort();
  /// A copy of the current status; safe from any thread.
  [[nodiscard]] MigrationStatus status() const;

 private:
  [[nodiscard]] Result<void> receive(Connection& connection);
  void set_state(MigrationState to);

  DestinationVm& vm_;
  EngineTuning tuning_;
  std::optional<Listener> listener_;
  mutable std::mutex mutex_;
  MigrationStatus status_;
  Connection* connection_ = nullptr;  ///< while run() holds one (abort shuts it down)
  std::atomic<bool> aborted_{false};
};

}  // namespace godwit::migration
