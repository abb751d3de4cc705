// Filling and checking the machine description.
#include "vmm/fdt/machine_description.h"

#include <set>
#include <utility>

#include "vmm/fdt/hex_text.h"

namespace godwit::fdt {
namespace {

/// A named guest-physical window, for overlap checks and error messages.
struct NamedRange {
  std::string name;
  uint64_t base = 0;
  uint64_t size = 0;
};

bool overlaps(const NamedRange& a, const NamedRange& b) {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

std::string describe_range(const NamedRange& r) {
  return r.name + " [" + hex(r.base) + ", " + hex(r.base + r.size) + ")";
}

Result<void> check_extent(const NamedRange& r) {
  if (r.size == 0)
    return fail("machine description: " + r.name + " at " + hex(r.base) + " is empty");
  if (r.base + r.size < r.base)
    return fail("machine description: " + r.name + " at " + hex(r.base) + " size " + hex(r.size) +
                " wraps around the address space");
  return {};
}

Result<void> check_mmio_window(const NamedRange& r) {
  TRY_VOID(check_extent(r));
  if (r.base % kPageSize != 0 || r.size % kPageSize != 0)
    return fail("machine description: " + describe_range(r) + " is not page-aligned");
  return {};
}

Result<void> check_irq(const std::string& owner, uint32_t irq, std::set<uint32_t>& used) {
  if (irq >= kIoapicPins)
    return fail("machine description: " + owner + " IRQ " + std::to_string(irq) +
                " is not an IOAPIC pin (0-" + std::to_string(kIoapicPins - 1) + ")");
  if (!used.insert(irq).second)
    return fail("machine description: " + owner + " IRQ " + std::to_string(irq) +
                " is already taken by another device");
  return {};
}

}  // namespace

std::vector<MemoryRange> describe_memory(std::span<const RegionSpec> regions) {
  std::vector<MemoryRange> ranges;
  ranges.reserve(regions.size());
  for (const RegionSpec& region : regions) ranges.push_back({region.gpa, region.size});
  return ranges;
}

std::vector<MemoryRange> describe_memory(const GuestMemory& memory) {
  std::vector<MemoryRange> ranges;
  for (const MemoryRegion& region : memory.regions()) ranges.push_back({region.gpa, region.size});
  return ranges;
}

MachineDescription describe_machine(std::span<const RegionSpec> regions, uint32_t vcpus) {
  MachineDescription machine;
  machine.memory = describe_memory(regions);
  machine.vcpus = vcpus;
  return machine;
}

MachineDescription describe_machine(const GuestMemory& memory, uint32_t vcpus) {
  MachineDescription machine;
  machine.memory = describe_memory(memory);
  machine.vcpus = vcpus;
  return machine;
}

Result<VirtioMmioDevice> add_virtio_mmio_device(MachineDescription& machine, std::string type) {
  uint64_t index = machine.virtio_devices.size();
  if (kFirstVirtioIrq + index >= kIoapicPins)
    return fail("adding virtio-mmio device " + type + ": all " +
                std::to_string(kIoapicPins - kFirstVirtioIrq) +
                " IOAPIC pins for virtio devices are taken");
  VirtioMmioDevice device{
      .base = platform::kVirtioMmioBase + index * kVirtioMmioSize,
      .size = kVirtioMmioSize,
      .irq = static_cast<uint32_t>(kFirstVirtioIrq + index),
      .sense = InterruptSense::edge_rising,
      .type = std::move(type),
  };
  machine.virtio_devices.push_back(device);
  return device;
}

Result<void> validate(const MachineDescription& machine) {
  if (machine.vcpus == 0 || machine.vcpus > kMaxVcpus)
    return fail("machine description: " + std::to_string(machine.vcpus) + " vCPUs (supported: 1-" +
                std::to_string(kMaxVcpus) + ")");
  if (machine.memory.empty()) return fail("machine description: no RAM");

  std::vector<NamedRange> ranges;
  for (const MemoryRange& ram : machine.memory) {
    NamedRange r{"RAM", ram.gpa, ram.size};
    TRY_VOID(check_extent(r));
    ranges.push_back(r);
  }
  std::vector<NamedRange> windows = {
      {"testdev page", machine.testdev_base, machine.testdev_size},
      {"IOAPIC", machine.ioapic_base, kApicWindowSize},
      {"LAPIC", machine.lapic_base, kApicWindowSize},
  };
  for (const VirtioMmioDevice& device : machine.virtio_devices)
    windows.push_back({"virtio-mmio " + device.type, device.base, device.size});
  for (const NamedRange& window : windows) {
    TRY_VOID(check_mmio_window(window));
    ranges.push_back(window);
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    for (size_t j = i + 1; j < ranges.size(); ++j)
      if (overlaps(ranges[i], ranges[j]))
        return fail("machine description: " + describe_range(ranges[j]) + " overlaps " +
                    describe_range(ranges[i]));

  if (machine.uart.ports == 0) return fail("machine description: the UART has no ports");
  std::set<uint32_t> irqs;
  TRY_VOID(check_irq("UART", machine.uart.irq, irqs));
  for (const VirtioMmioDevice& device : machine.virtio_devices)
    TRY_VOID(check_irq("virtio-mmio " + device.type + " at " + hex(device.base), device.irq, irqs));
  return {};
}

}  // namespace godwit::fdt
