// The interface a virtio device (rng, blk, net) implements for its
// transport. A device is pure logic: the transport owns the virtqueues and
// the interrupt, configures them from the driver's register writes, and hands
// them to the device at DRIVER_OK through activate(). The device never sees
// registers, and the transport never sees requests.
//
//   driver --registers--> MmioTransport --activate(features, queues, irq)--> device
//   driver --QueueNotify--> MmioTransport --process_queue(i)--> device
//   device --VirtioInterrupt::signal_used_buffer()--> InterruptStatus + GSI edge
//
// Snapshots: every device state is carried in a DeviceState (device id +
// opaque bytes the device serialises itself). The defaults of state() and
// restore() fail ("snapshot not implemented for X"), so a device that forgot
// migration fails loudly instead of losing data.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "devices/virtio/queue.h"

namespace godwit::virtio {

/// VIRTIO_F_VERSION_1 (feature bit 32): the modern interface; required.
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

/// Interrupts a device raises, implemented by its transport. Thread-safe
/// (device worker threads may call it) and never takes the transport lock.
class VirtioInterrupt {
 public:
  virtual ~VirtioInterrupt() = default;
  /// Used-buffer notification: sets InterruptStatus bit 0 and raises the line.
  virtual void signal_used_buffer() = 0;
  /// Configuration change: bumps ConfigGeneration, sets InterruptStatus bit 1
  /// and raises the line.
  virtual void signal_config_change() = 0;
};

/// A device's snapshot: its id (checked on restore) and opaque bytes whose
/// layout the device defines and documents.
struct DeviceState {
  uint32_t device_id = 0;       ///< VirtioDevice::device_id() of the saver
  std::vector<uint8_t> data{};  ///< device-defined serialisation

  friend bool operator==(const DeviceState&, const DeviceState&) = default;
};

/// One virtio device behind a transport. The transport serialises every call
/// (one mutex per transport), so implementations need no locking of their
/// own unless they run worker threads.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  /// Virtio device id (1 net, 2 block, 4 entropy, ...).
  [[nodiscard]] virtual uint32_t device_id() const = 0;
  /// Short instance name for messages ("rng0").
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// Device-specific feature bits offered (the transport adds VERSION_1,
  /// INDIRECT_DESC and EVENT_IDX, which the Queue implements).
  [[nodiscard]] virtual uint64_t offered_features() const = 0;
  /// QueueNumMax of each queue; the number of entries is the number of queues.
  [[nodiscard]] virtual std::vector<uint16_t> queue_max_sizes() const = 0;

  /// Reads device config space at `offset`; bytes beyond the config read 0.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
  /// Writes device config space at `offset`; read-only or absent bytes are ignored.
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;

  /// DRIVER_OK: starts the device with the negotiated features, the queues
  /// (some may not be ready) and the interrupt. The spans stay valid until
  /// reset(). An error puts the device into NEEDS_RESET.
  [[nodiscard]] virtual Result<void> activate(uint64_t negotiated_features, std::span<Queue> queues,
                                              VirtioInterrupt& interrupt) = 0;
  /// Device reset (Status written 0): drops the queues and interrupt
  /// references and returns to the pre-activation state.
  virtual void reset() = 0;
  /// The driver notified queue `index` (< number of queues; only after
  /// activate()). An error (a broken queue, a backend failure the device
  /// cannot report to the driver) puts the device into NEEDS_RESET.
  [[nodiscard]] virtual Result<void> process_queue(uint16_t index) = 0;

  /// Host file descriptors the device wants watched besides its queue
  /// notifications (a tap, a completion eventfd). The device's event thread
  /// watches them edge-triggered for readability (EPOLLIN | EPOLLET), also
  /// before activate(). The set is fixed for the device's lifetime.
  [[nodiscard]] virtual std::vector<int> event_fds() const { return {}; }
  /// `fd` (one of event_fds()) became readable. Called with the transport
  /// lock held, whether or not the device is active (an inactive device leaves
  /// the data where it is). Edge-triggered: consume until EAGAIN, or until the
  /// guest has no room, and take up the rest in the next process_queue().
  /// An error puts the device into NEEDS_RESET.
  [[nodiscard]] virtual Result<void> process_event(int /*fd*/) { return {}; }

  /// Counters for GET /vm ("requests", "bytes_read", "rx_frames", ...), read
  /// under the transport lock; monotonic since construction.
  [[nodiscard]] virtual std::vector<std::pair<std::string, uint64_t>> counters() const {
    return {};
  }
  /// Configuration shown by GET /vm ("path", "readonly", "tap", "mac", ...).
  [[nodiscard]] virtual std::vector<std::pair<std::string, std::string>> properties() const {
    return {};
  }

  /// Snapshot of the device-specific state (not the queues: the transport
  /// saves those). Default: fails.
  [[nodiscard]] virtual Result<DeviceState> state() const {
    return fail("snapshot not implemented for virtio device " + std::string(name()));
  }
  /// Restores state() output before the transport re-activates the device.
  /// Default: fails.
  [[nodiscard]] virtual Result<void> restore(const DeviceState& /*state*/) {
    return fail("restore not implemented for virtio device " + std::string(name()));
  }
};

}  // namespace godwit::virtio
