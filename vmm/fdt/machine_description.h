// The machine as a guest should see it: RAM ranges, vCPUs, the legacy UART,
// the testdev page and every virtio-mmio device with its address and
// interrupt. A plain value, filled by the machine builder and turned into the
// flattened device tree (fdt_builder.h) and the Linux command-line fallback
// (virtio_cmdline.h), so both come from one description.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/platform.h"

namespace godwit::fdt {

/// Bytes of MMIO space per virtio-mmio device (one page, vmm/platform.h).
inline constexpr uint64_t kVirtioMmioSize = 0x1000;
/// IOAPIC pin (GSI) of the first virtio-mmio device; the next ones follow.
/// Pins 0-4 are the timer, keyboard, cascade, COM2 and COM1.
inline constexpr uint32_t kFirstVirtioIrq = 5;
/// Number of IOAPIC input pins (KVM's in-kernel IOAPIC has 24).
inline constexpr uint32_t kIoapicPins = 24;
/// Largest vCPU count described (APIC IDs 0..253, as the MP table allows).
inline constexpr uint32_t kMaxVcpus = 254;
/// Size of the IOAPIC and LAPIC register windows.
inline constexpr uint64_t kApicWindowSize = 0x1000;

/// Trigger mode and polarity of an IOAPIC input, as the second cell of an
/// `interrupts` property (Linux binding intel,ce4100-ioapic).
enum class InterruptSense : uint32_t {
  edge_rising = 0,
  level_low = 1,
  level_high = 2,
  edge_falling = 3,
};

/// One range of guest RAM.
struct MemoryRange {
  uint64_t gpa = 0;
  uint64_t size = 0;
};

/// The legacy 8250 UART in x86 port I/O space.
struct UartDescription {
  uint16_t port = platform::kSerialPort;
  uint16_t ports = platform::kSerialPortLen;
  uint32_t irq = platform::kSerialIrq;
};

/// One virtio-mmio transport: its register page, its IOAPIC pin and what it is.
struct VirtioMmioDevice {
  uint64_t base = 0;
  uint64_t size = kVirtioMmioSize;
  uint32_t irq = 0;  ///< GSI = IOAPIC pin
  InterruptSense sense = InterruptSense::edge_rising;
  std::string type;  ///< for humans: "block", "net", "rng"
};

/// Everything build_fdt() and virtio_mmio_cmdline() need to know.
struct MachineDescription {
  std::vector<MemoryRange> memory;
  uint32_t vcpus = 1;  ///< vCPU i has APIC ID i
  UartDescription uart{};
  uint64_t testdev_base = platform::kTestdevBase;
  uint64_t testdev_size = platform::kTestdevSize;
  uint64_t ioapic_base = platform::kIoapicBase;
  uint64_t lapic_base = platform::kLapicBase;
  std::vector<VirtioMmioDevice> virtio_devices;
  std::string bootargs;  ///< /chosen/bootargs; empty: no bootargs property
};

/// The RAM ranges of a layout (e.g. x86_memory_layout(size)).
[[nodiscard]] std::vector<MemoryRange> describe_memory(std::span<const RegionSpec> regions);
/// The RAM ranges of mapped guest memory.
[[nodiscard]] std::vector<MemoryRange> describe_memory(const GuestMemory& memory);

/// A machine with `regions` of RAM and `vcpus` vCPUs, the platform's UART,
/// testdev page and interrupt controllers, and no virtio devices yet.
[[nodiscard]] MachineDescription describe_machine(std::span<const RegionSpec> regions,
                                                  uint32_t vcpus);
/// The same for mapped guest memory.
[[nodiscard]] MachineDescription describe_machine(const GuestMemory& memory, uint32_t vcpus);

/// Appends a virtio-mmio device in the next free slot: base
/// kVirtioMmioBase + n * kVirtioMmioSize and IOAPIC pin kFirstVirtioIrq + n,
/// where n is the number of devices already present. Returns the new device;
/// fails once the IOAPIC runs out of pins.
[[nodiscard]] Result<VirtioMmioDevice> add_virtio_mmio_device(MachineDescription& machine,
                                                              std::string type);

/// Checks the description is consistent: RAM present and not overlapping,
/// 1..kMaxVcpus vCPUs, interrupts on existing IOAPIC pins and not shared,
/// device windows non-empty, page-aligned, not overlapping RAM or each other.
/// The error names the offending item.
[[nodiscard]] Result<void> validate(const MachineDescription& machine);

}  // namespace godwit::fdt
