// The guest's physical memory map as the firmware would report it (e820 for
// the Linux zero page, the same ranges for the PVH memory map): every RAM
// region as usable, except [0x9fc00, 1 MiB) (EBDA, VGA window, BIOS area,
// where the MP table lives), which is reserved. The MMIO hole is not listed.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace godwit::boot {

/// e820 range types.
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

/// One range of the memory map.
struct E820Range {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = kE820Ram;
  friend bool operator==(const E820Range&, const E820Range&) = default;
};

/// The memory map of `memory`, sorted by address.
[[nodiscard]] std::vector<E820Range> e820_map(const GuestMemory& memory);

}  // namespace godwit::boot
