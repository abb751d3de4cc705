// Where the flattened device tree lives in the guest when the VMM places it
// at a fixed address (the project's own test guests read it there; Linux gets
// the same blob through a SETUP_DTB setup_data entry instead).
//
// [0xe0000, 0xf0000) is guest RAM that the e820 map reports as reserved (the
// BIOS area, [kEbdaStart, 1 MiB) in vmm/boot/boot_layout.h), so no kernel
// reuses it, and nothing else the VMM writes lives there: the MP table starts
// at 0xf0000, the kernel command line ends at 0x30000, and the test guests'
// per-vCPU blocks end at 0xa0000 (tests/guests/layout.inc). docs/fdt.md has
// the full map.
#pragma once

#include <cstdint>

namespace godwit::fdt {

/// Guest-physical address of the device tree blob for the project's guests.
inline constexpr uint64_t kFdtAddr = 0xe0000;
/// Bytes reserved for the blob at kFdtAddr: [0xe0000, 0xf0000).
inline constexpr uint64_t kFdtMaxSize = 0x10000;
/// Suggested address of the Linux SETUP_DTB setup_data entry (fdt_delivery.h):
/// its 16-byte header sits just below kFdtAddr, so the DTB inside it lands at
/// kFdtAddr, the same place for Linux and for the project's guests. Still in
/// the e820-reserved BIOS area, 8-byte aligned.
inline constexpr uint64_t kSetupDtbEntryAddr = kFdtAddr - 16;

}  // namespace godwit::fdt
