// The per-device migration interface: one interface for every piece of VM
// state (RAM, each vCPU, irqchip, PIT, kvmclock, UART, each virtio device,
// later each VFIO device), carrying the whole protocol so that the engine
// (snapshots, precopy, postcopy) needs no per-device special cases
// (../shared/docs/architecture.md §2, migration-requirements.md §3, R11-R12).
//
//   source:       pending(query) ... save_iterate() ... [VM stopped]
//                 pending(final) save_complete() cleanup(success|failure)
//   destination:  load(section) ... [postcopy_prepare()] ... cleanup(...)
//
// Every method has a default that FAILS with "<operation> not supported by
// <section>", so a device that forgot part of the protocol fails loudly
// instead of silently losing state. State travels in versioned sections
// (migration/section.h, migration/state_stream.h); load() is given the
// version the saver wrote and must accept every version from min_version()
// to version(). Values of a codec'd type get all of this from StateSection<T>
// (migration/state_section.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "migration/section.h"

namespace godwit::migration {

/// What a device still has to send, split by when it can move (R11). The
/// engine computes the total itself; devices never report one.
struct PendingData {
  uint64_t precopy_bytes = 0;            ///< can move while the VM runs
  uint64_t stopcopy_bytes = 0;           ///< can move only while the VM is stopped
  uint64_t postcopy_bytes = 0;           ///< can move after the destination runs
  uint32_t switchover_ack_requests = 0;  ///< new switchover-ack requests (consume-once)

  friend bool operator==(const PendingData&, const PendingData&) = default;
};

/// How precise a pending() answer must be (R12).
enum class PendingQuery {
  estimate,  ///< fast: cached counters only; no dirty-log harvest, no device ioctl
  exact,     ///< accurate: harvest dirty logs, refresh device sizes
  final,     ///< the exact query at switchover (VM stopped)
};

/// One piece of migratable VM state.
class Migratable {
 public:
  virtual ~Migratable() = default;

  /// Section identity: kind ("cpu", "ram", "uart", "virtio-blk", ...) and
  /// instance (vCPU index, device index).
  [[nodiscard]] virtual SectionKey key() const = 0;
  /// Version this code writes.
  [[nodiscard]] virtual uint32_t version() const = 0;
  /// Oldest version load() accepts.
  [[nodiscard]] virtual uint32_t min_version() const { return version(); }

  /// Data still to send (R11, R12).
  [[nodiscard]] virtual Result<PendingData> pending(PendingQuery /*query*/) {
    return not_supported("pending");
  }
  /// One precopy round: writes what can move now into `out`; returns true
  /// when nothing precopy-able is left for this round.
  [[nodiscard]] virtual Result<bool> save_iterate(SectionWriter& /*out*/) {
    return not_supported("save_iterate");
  }
  /// Stop-and-copy (VM stopped): writes the complete remaining state.
  [[nodiscard]] virtual Result<void> save_complete(SectionWriter& /*out*/) {
    return not_supported("save_complete");
  }
  /// Loads one section this object (or its peer) wrote with `version`.
  [[nodiscard]] virtual Result<void> load(SectionReader& /*in*/, uint32_t /*version*/) {
    return not_supported("load");
  }
  /// Destination, before postcopy starts: arm on-demand fetching.
  [[nodiscard]] virtual Result<void> postcopy_prepare() {
    return not_supported("postcopy_prepare");
  }
  /// End of a migration or snapshot: release what it held; `success` says how it ended.
  [[nodiscard]] virtual Result<void> cleanup(bool /*success*/) { return not_supported("cleanup"); }

 protected:
  /// "<what> not supported by <kind>[<instance>]".
  [[nodiscard]] std::unexpected<Error> not_supported(std::string_view what) const {
    return fail(std::string(what) + " not supported by " + key().name());
  }
};

}  // namespace godwit::migration
