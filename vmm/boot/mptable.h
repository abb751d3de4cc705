// Intel MultiProcessor Specification 1.4 tables, so a Linux guest without ACPI
// finds its CPUs and the IOAPIC. Layout at kMpTableAddr (0xf0000, inside the
// e820-reserved BIOS area):
//
//   0xf0000  MP floating pointer ("_MP_", 16 bytes) -> config table
//   0xf0010  configuration table header ("PCMP", 44 bytes), then entries:
//            one processor per vCPU (APIC ID = index, vCPU 0 is the BSP),
//            bus 0 "ISA", IOAPIC (id = vcpus, 0xfec00000), IRQ 0-23 ->
//            IOAPIC pins 0-23 (KVM's default GSI routing; the virtio-mmio
//            devices sit on GSI 5 and up), ExtINT -> LINT0,
//            NMI -> LINT1 of every LAPIC.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::boot {

/// IOAPIC and LAPIC base addresses (as in vmm/platform.h; boot/ sits below vmm/).
inline constexpr uint32_t kMpIoapicAddr = 0xfec00000;
inline constexpr uint32_t kMpLapicAddr = 0xfee00000;
/// Largest vCPU count the table can describe (APIC IDs 0..253, IOAPIC id 254).
inline constexpr unsigned kMpMaxVcpus = 254;

/// The MP floating pointer and configuration table as bytes, for placement
/// at `base` (the pointer at base, the config table at base + 16).
[[nodiscard]] Result<std::vector<uint8_t>> build_mp_table(uint64_t base, unsigned vcpus);

/// Writes build_mp_table(kMpTableAddr, vcpus) into guest memory.
[[nodiscard]] Result<void> write_mp_table(GuestMemory& memory, unsigned vcpus);

}  // namespace godwit::boot
