// The machine's virtio-mmio devices (--disk, --net, --rng): each one a
// MmioTransport on the MMIO bus, described in the device tree, with one
// ioeventfd per queue (a guest write of the queue index to QueueNotify
// signals it inside KVM, without a userspace exit), one irqfd on its GSI
// (the transport's interrupt pulses the in-kernel IOAPIC pin), and one event
// thread that runs the device: queue notifications and backend fds (tap)
// are handled there, never on a vCPU thread.
//
//   vCPU --QueueNotify write--> KVM ioeventfd --> event thread --notify(i)--> transport --> device
//   backend fd (tap) readable --> event thread --device_event(fd)--> transport --> device
//   device --signal--> transport --write(irqfd)--> KVM IOAPIC pin --> guest LAPIC
//
// Devices are numbered in the order disks, nets, rng: slot n sits at
// kVirtioMmioBase + n * 4 KiB on GSI 5 + n.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/result.h"
#include "devices/bus.h"
#include "devices/virtio/device.h"
#include "devices/virtio/mmio_transport.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"
#include "vmm/fdt/machine_description.h"

namespace godwit {

/// All virtio devices of one machine and their event threads.
class VirtioDevices {
 public:
  /// Opens every device of `config` (files, taps), creates its transport,
  /// ioeventfds and irqfd, appends it to `description` and maps it on `mmio`.
  /// Nothing runs until start().
  [[nodiscard]] static Result<std::unique_ptr<VirtioDevices>> create(
      const VmConfig& config, GuestMemory& memory, kvm::Vm& vm, Bus& mmio,
      fdt::MachineDescription& description);
  /// Stops the event threads and unregisters the eventfds from KVM.
  ~VirtioDevices();
  VirtioDevices(const VirtioDevices&) = delete;
  VirtioDevices& operator=(const VirtioDevices&) = delete;

  /// Starts one event thread per device, and signals every queue once so
  /// that chains made available before a restore are not left waiting for
  /// a notification the driver already sent (spurious ones are harmless).
  [[nodiscard]] Result<void> start();
  /// Blocks until every event thread is idle and parked: no device touches
  /// guest memory or its backend until resume(). Notifications that arrive
  /// meanwhile stay pending in their eventfds.
  void pause();
  /// Lets parked event threads run again.
  void resume();
  /// Stops and joins the event threads (idempotent).
  void stop();

  /// The state of every transport, its queues and its device, in device
  /// order. Call while paused (or before start()): the event threads are idle.
  [[nodiscard]] Result<std::vector<virtio::MmioTransportState>> save_state() const;
  /// Loads save_state() output into the same device list (same order, kinds
  /// and queue counts; each device checks its own state, e.g. disk size).
  [[nodiscard]] Result<void> restore_state(const std::vector<virtio::MmioTransportState>& state);

  /// Number of devices.
  [[nodiscard]] size_t size() const;
  /// The devices as GET /vm lists them: name, type, base, irq, status,
  /// features, counters, properties.
  [[nodiscard]] nlohmann::json info() const;

 private:
  struct Slot;
  class EventThread;
  VirtioDevices();
  /// Writes 1 to every queue's ioeventfd: the event threads look at every queue.
  [[nodiscard]] Result<void> signal_all_queues();
  [[nodiscard]] Result<void> add(std::unique_ptr<virtio::VirtioDevice> device,
                                 const std::string& type, GuestMemory& memory, Bus& mmio,
                                 fdt::MachineDescription& description);

  kvm::Vm* vm_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace godwit
