// The machine description as a flattened device tree (DTB), written with
// libfdt's sequential-write API. The tree (docs/fdt.md has the same picture):
//
//   / compatible "godwit,microvm", #address-cells 2, #size-cells 2,
//     interrupt-parent <IOAPIC>
//   ├── chosen                          bootargs (when given)
//   ├── memory@0                        device_type "memory", reg
//   ├── memory@100000000                (only with RAM above 4 GiB)
//   ├── cpus                            #address-cells 1, #size-cells 0
//   │   └── cpu@N                       device_type "cpu", reg <APIC ID>
//   ├── interrupt-controller@fec00000   "intel,ce4100-ioapic", #interrupt-cells 2
//   ├── interrupt-controller@fee00000   "intel,ce4100-lapic"
//   ├── serial@3f8                      "godwit,8250-pio", reg = I/O ports, interrupts <4 0>
//   ├── testdev@d0000000                "godwit,testdev"
//   └── virtio_mmio@d0001000 ...        "virtio,mmio", reg, interrupts <GSI sense>
//
// Interrupt specifiers follow the Linux x86 IOAPIC binding: <pin sense>,
// sense 0 edge rising, 1 level low, 2 level high, 3 edge falling.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "vmm/fdt/machine_description.h"

namespace godwit::fdt {

/// Root compatible string of every godwit machine.
inline constexpr const char* kMachineCompatible = "godwit,microvm";
/// Compatible strings of the nodes godwit defines itself.
inline constexpr const char* kSerialCompatible = "godwit,8250-pio";
inline constexpr const char* kTestdevCompatible = "godwit,testdev";
/// Linux bindings for the interrupt controllers and virtio-mmio.
inline constexpr const char* kIoapicCompatible = "intel,ce4100-ioapic";
inline constexpr const char* kLapicCompatible = "intel,ce4100-lapic";
inline constexpr const char* kVirtioMmioCompatible = "virtio,mmio";
/// Property naming what a virtio-mmio device is ("block", "net", ...), for humans.
inline constexpr const char* kDeviceTypeProperty = "godwit,device-type";
/// Phandles of the IOAPIC (every device's interrupt-parent) and the LAPIC.
inline constexpr uint32_t kIoapicPhandle = 1;
inline constexpr uint32_t kLapicPhandle = 2;
/// Input clock of the 8250 UART (the PC's 1.8432 MHz crystal).
inline constexpr uint32_t kUartClockHz = 1'843'200;
/// Largest blob build_fdt() produces before giving up.
inline constexpr size_t kMaxFdtBlobSize = 1 << 20;

/// The DTB describing `machine`, after validate(machine). The blob is packed
/// (totalsize == size()) and passes fdt_check_full().
[[nodiscard]] Result<std::vector<uint8_t>> build_fdt(const MachineDescription& machine);

/// "/virtio_mmio@d0001000": the path of a device's node in the tree.
[[nodiscard]] std::string virtio_mmio_node_path(const VirtioMmioDevice& device);
/// "/memory@100000000": the path of a RAM range's node.
[[nodiscard]] std::string memory_node_path(const MemoryRange& range);

}  // namespace godwit::fdt
