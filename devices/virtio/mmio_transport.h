// The virtio-mmio transport, virtio 1.x modern interface (Version 2): the
// register page through which a driver discovers a VirtioDevice, negotiates
// features, configures the split virtqueues and notifies them, plus the
// interrupt status. The transport owns the Queues and hands them to the
// device at DRIVER_OK. Registers (0x000-0x0fc) take 32-bit aligned accesses
// only; config space (0x100-) takes 1, 2, 4 or 8 bytes. Anything else is
// ignored (reads return 0) and logged at debug level.
//
// Device status flow (bits the driver sets, in order):
//
//   0 --ACKNOWLEDGE(1)--> --DRIVER(2)--> features --FEATURES_OK(8)--> queues
//     --DRIVER_OK(4)--> device activated, QueueNotify -> process_queue()
//   FEATURES_OK is refused (stays clear) without VERSION_1 or with features
//   the device did not offer. A broken queue or device error sets
//   NEEDS_RESET(0x40) with a logged reason and, after DRIVER_OK, raises a
//   config-change interrupt; notifications are then ignored. Writing 0 to
//   Status resets everything. FAILED(0x80) from the driver stops the device.
//
// Interrupts: InterruptStatus bit 0 = used buffer, bit 1 = config change;
// each signal sets the bit and calls the injected `trigger` (for an edge GSI:
// pulse_irq_line(), or later an irqfd write). The driver clears bits through
// InterruptACK. Thread-safety: one mutex per transport serialises register
// accesses (vCPU threads) and notifications (later an ioeventfd thread);
// InterruptStatus and ConfigGeneration are atomics so devices may signal from
// any thread without the lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "devices/bus.h"
#include "devices/irq_line.h"
#include "devices/virtio/device.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace godwit::virtio {

/// Register offsets of the virtio-mmio page (virtio 1.2, section 4.2.2).
namespace mmio {
inline constexpr uint64_t kMagicValue = 0x000;         ///< R: 0x74726976 "virt"
inline constexpr uint64_t kVersion = 0x004;            ///< R: 2
inline constexpr uint64_t kDeviceId = 0x008;           ///< R
inline constexpr uint64_t kVendorId = 0x00c;           ///< R
inline constexpr uint64_t kDeviceFeatures = 0x010;     ///< R: 32 bits selected by ...Sel
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;  ///< W
inline constexpr uint64_t kDriverFeatures = 0x020;     ///< W
inline constexpr uint64_t kDriverFeaturesSel = 0x024;  ///< W
inline constexpr uint64_t kQueueSel = 0x030;           ///< W
inline constexpr uint64_t kQueueNumMax = 0x034;        ///< R
inline constexpr uint64_t kQueueNum = 0x038;           ///< W
inline constexpr uint64_t kQueueReady = 0x044;         ///< RW
inline constexpr uint64_t kQueueNotify = 0x050;        ///< W: queue index
inline constexpr uint64_t kInterruptStatus = 0x060;    ///< R
inline constexpr uint64_t kInterruptAck = 0x064;       ///< W
inline constexpr uint64_t kStatus = 0x070;             ///< RW
inline constexpr uint64_t kQueueDescLow = 0x080;       ///< W
inline constexpr uint64_t kQueueDescHigh = 0x084;      ///< W
inline constexpr uint64_t kQueueDriverLow = 0x090;     ///< W: avail ring
inline constexpr uint64_t kQueueDriverHigh = 0x094;    ///< W
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;     ///< W: used ring
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;    ///< W
inline constexpr uint64_t kShmSel = 0x0ac;             ///< W: shared memory (none here)
inline constexpr uint64_t kShmLenLow = 0x0b0;          ///< R: ~0 = no such region
inline constexpr uint64_t kShmLenHigh = 0x0b4;         ///< R: ~0 = no such region
inline constexpr uint64_t kConfigGeneration = 0x0fc;   ///< R
inline constexpr uint64_t kConfig = 0x100;             ///< device config space

inline constexpr uint32_t kMagic = 0x74726976;   ///< "virt" little-endian
inline constexpr uint32_t kVersion2 = 2;         ///< modern (non-legacy) interface
inline constexpr uint32_t kVendor = 0x54574447;  ///< "GDWT" little-endian

inline constexpr uint32_t kInterruptUsedBuffer = 1;    ///< InterruptStatus bit 0
inline constexpr uint32_t kInterruptConfigChange = 2;  ///< InterruptStatus bit 1
}  // namespace mmio

/// Device status bits (virtio 1.2, section 2.1).
namespace status {
inline constexpr uint32_t kAcknowledge = 1;
inline constexpr uint32_t kDriver = 2;
inline constexpr uint32_t kDriverOk = 4;
inline constexpr uint32_t kFeaturesOk = 8;
inline constexpr uint32_t kNeedsReset = 0x40;
inline constexpr uint32_t kFailed = 0x80;
}  // namespace status

/// Everything needed to recreate a transport and its device (snapshots).
struct MmioTransportState {
  uint32_t status = 0;               ///< device status register
  uint32_t device_features_sel = 0;  ///< DeviceFeaturesSel
  uint32_t driver_features_sel = 0;  ///< DriverFeaturesSel
  uint64_t driver_features = 0;      ///< features the driver wrote (accepted at FEATURES_OK)
  uint32_t queue_sel = 0;            ///< QueueSel
  uint32_t interrupt_status = 0;     ///< pending InterruptStatus bits
  uint32_t config_generation = 0;    ///< ConfigGeneration
  bool device_active = false;        ///< the device was activated (DRIVER_OK)
  std::string needs_reset_reason{};  ///< why NEEDS_RESET was set (empty if not)
  std::vector<QueueState> queues{};  ///< one per device queue
  DeviceState device{};              ///< VirtioDevice::state()

  friend bool operator==(const MmioTransportState&, const MmioTransportState&) = default;
};

/// A trigger for an edge-triggered GSI: set_level(true) then set_level(false).
[[nodiscard]] std::function<void()> pulse_irq_line(IrqLine& line);

/// One virtio-mmio register page in front of one VirtioDevice.
class MmioTransport : public BusDevice {
 public:
  /// `trigger` raises the device's interrupt; it is called on every signal,
  /// from any thread, possibly with the transport lock held, so it must not
  /// call back into the transport.
  MmioTransport(GuestMemory& memory, std::unique_ptr<VirtioDevice> device,
                std::function<void()> trigger);
  ~MmioTransport() override;
  MmioTransport(const MmioTransport&) = delete;
  MmioTransport& operator=(const MmioTransport&) = delete;

  /// Guest register or config read.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  /// Guest register or config write.
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// A queue notification that did not come through the register (an
  /// ioeventfd on QueueNotify): same effect as writing `queue` to QueueNotify.
  void notify(uint32_t queue);

  /// A backend fd of the device (VirtioDevice::event_fds()) became readable:
  /// runs VirtioDevice::process_event() under the transport lock; an error
  /// puts the device into NEEDS_RESET.
  void device_event(int fd);
  /// Number of virtqueues (one ioeventfd each).
  [[nodiscard]] size_t queue_count() const { return queues_.size(); }

  /// What GET /vm shows of the transport and its device, taken under the lock.
  struct Info {
    uint32_t device_id = 0;
    std::string name;
    uint32_t status = 0;
    uint64_t driver_features = 0;  ///< accepted features (0 before FEATURES_OK)
    bool active = false;           ///< DRIVER_OK reached and not reset
    std::string needs_reset_reason;
    uint32_t interrupt_status = 0;
    std::vector<std::pair<std::string, uint64_t>> counters;
    std::vector<std::pair<std::string, std::string>> properties;
  };
  /// A consistent snapshot of the transport for the API.
  [[nodiscard]] Info info() const;

  /// Current Status register.
  [[nodiscard]] uint32_t device_status() const;
  /// Pending InterruptStatus bits.
  [[nodiscard]] uint32_t interrupt_status() const { return interrupt_status_.load(); }
  /// Why the device entered NEEDS_RESET (empty when it did not).
  [[nodiscard]] std::string needs_reset_reason() const;
  /// The device behind the transport.
  [[nodiscard]] VirtioDevice& device() { return *device_; }

  /// Snapshot of the transport, its queues and its device (fails if the
  /// device does not implement state()).
  [[nodiscard]] Result<MmioTransportState> state() const;
  /// Replaces the state: queues are re-validated, the device state restored
  /// and, if it was active, the device re-activated; a pending interrupt is
  /// raised again (an edge lost in migration would hang the driver).
  [[nodiscard]] Result<void> restore(const MmioTransportState& state);

 private:
  class Interrupt;

  /// 32-bit register read (lock held).
  [[nodiscard]] uint32_t read_register(uint64_t offset);
  /// 32-bit register write (lock held).
  void write_register(uint64_t offset, uint32_t value);
  /// Status register write: the ACKNOWLEDGE..DRIVER_OK flow (lock held).
  void write_status(uint32_t value);
  /// Whether the driver's features may be accepted at FEATURES_OK (lock held).
  [[nodiscard]] Result<void> check_driver_features() const;
  /// QueueReady write for the selected queue (lock held).
  void write_queue_ready(uint32_t value);
  /// Sets the low or high half of a queue address (lock held).
  void write_queue_address(uint64_t offset, uint32_t value);
  /// QueueNotify: runs the device (lock held).
  void notify_queue(uint32_t index);
  /// Sets NEEDS_RESET, logs `reason`, raises config change after DRIVER_OK (lock held).
  void enter_needs_reset(const std::string& reason);
  /// Status written 0: device, queues and registers back to reset (lock held).
  void reset_locked();
  /// The selected queue, or nullptr when QueueSel is out of range (lock held).
  [[nodiscard]] Queue* selected_queue();
  /// Sets `bits` in InterruptStatus and raises the interrupt.
  void raise(uint32_t bits);

  GuestMemory& memory_;
  std::unique_ptr<VirtioDevice> device_;
  std::function<void()> trigger_;
  std::unique_ptr<Interrupt> interrupt_;
  std::vector<Queue> queues_;  ///< never resized after construction (devices hold spans)
  uint64_t offered_features_ = 0;

  mutable std::mutex mutex_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  bool device_active_ = false;
  std::string needs_reset_reason_;
  std::atomic<uint32_t> interrupt_status_{0};
  std::atomic<uint32_t> config_generation_{0};
};

}  // namespace godwit::virtio
