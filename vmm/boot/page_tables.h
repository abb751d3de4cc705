// Identity page tables for long-mode entries: [0, 4 GiB) mapped with 2 MiB
// pages at the addresses in boot_layout.h. The MMIO hole [3 GiB, 4 GiB) is
// mapped uncached (PCD|PWT) so device registers are never cached.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::boot {

/// Page-table entry bits used by the identity map.
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPteWriteThrough = 1ull << 3;
inline constexpr uint64_t kPteCacheDisable = 1ull << 4;
inline constexpr uint64_t kPteLargePage = 1ull << 7;

/// Writes PML4, PDPT and page directories; returns the CR3 value (kPml4Addr).
[[nodiscard]] Result<uint64_t> write_identity_page_tables(GuestMemory& memory);

}  // namespace godwit::boot
