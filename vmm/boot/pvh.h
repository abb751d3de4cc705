// PVH boot: the hvm_start_info structure (Xen public arch-x86/hvm/start_info.h,
// version 1) with its module list and memory map. A PVH kernel is entered in
// 32-bit protected mode, paging off, at its XEN_ELFNOTE_PHYS32_ENTRY address
// with EBX = address of hvm_start_info.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/linux_payload.h"

namespace godwit::boot {

/// hvm_start_info::magic ("xEn3" with bit 7 of the "x" set).
inline constexpr uint32_t kHvmStartMagic = 0x336ec578;

/// struct hvm_start_info, version 1.
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56 && offsetof(HvmStartInfo, memmap_paddr) == 40);

/// struct hvm_modlist_entry (the initrd is module 0).
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

/// struct hvm_memmap_table_entry (types as in e820).
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

/// Writes hvm_start_info at kPvhStartInfoAddr, the module list (the initrd,
/// if any) and the memory map; returns the start_info address (for EBX).
[[nodiscard]] Result<uint64_t> write_pvh_start_info(GuestMemory& memory,
                                                    const LinuxPayload& payload,
                                                    std::span<const E820Range> memory_map);

}  // namespace godwit::boot
