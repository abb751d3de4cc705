// Fixed guest-physical addresses used by the boot loaders. docs/boot.md shows
// the same map as a table; keep them in step. Everything below 1 MiB except
// the MP table sits in RAM the e820 map reports as usable, so a kernel may
// reclaim it once it has consumed the boot structures.
//
//   0x0000_0500  GDT (4 descriptors: null, null, code at 0x10, data at 0x18)
//   0x0000_1000  PML4        } identity map of [0, 4 GiB) with 2 MiB pages,
//   0x0000_2000  PDPT        } written for long-mode entries only
//   0x0000_3000  4 page directories (to 0x6fff)
//   0x0000_7000  zero page (Linux struct boot_params)
//   0x0000_7c00  default load/entry address of a raw image (a boot sector)
//   0x0000_8000  PVH hvm_start_info, module list, memory map
//   0x0000_9ff0  initial stack pointer of a kernel boot
//   0x0002_0000  kernel command line (at most 64 KiB)
//   0x0009_fc00  [.., 1 MiB) reserved in e820 (EBDA, VGA, BIOS)
//   0x000f_0000  Intel MP floating pointer + configuration table
//   0x0010_0000  kernel (protected-mode part of a bzImage, unless it prefers
//                a higher relocatable address)
#pragma once

#include <cstdint>

namespace godwit::boot {

/// Global descriptor table written for protected- and long-mode entries.
inline constexpr uint64_t kGdtAddr = 0x500;
/// Number of 8-byte descriptors in that GDT.
inline constexpr uint64_t kGdtEntries = 4;
/// Code segment selector (Linux __BOOT_CS): 64-bit code in long mode, 32-bit otherwise.
inline constexpr uint16_t kCodeSelector = 0x10;
/// Data segment selector (Linux __BOOT_DS), flat read/write.
inline constexpr uint16_t kDataSelector = 0x18;

/// Long-mode identity page tables: PML4, PDPT, then kPageDirectories PDs.
inline constexpr uint64_t kPml4Addr = 0x1000;
inline constexpr uint64_t kPdptAddr = 0x2000;
inline constexpr uint64_t kPageDirAddr = 0x3000;
/// Page directories of 2 MiB pages: one per GiB of the identity map.
inline constexpr uint64_t kPageDirectories = 4;
/// Bytes the identity map covers: [0, kIdentityMapSize).
inline constexpr uint64_t kIdentityMapSize = kPageDirectories << 30;

/// First byte after the structures a raw image in protected or long mode must
/// not overwrite ([kGdtAddr, kRawBootStructuresEnd)).
inline constexpr uint64_t kRawBootStructuresEnd = kPageDirAddr + kPageDirectories * 0x1000;

/// Linux zero page (struct boot_params, 4 KiB).
inline constexpr uint64_t kZeroPageAddr = 0x7000;
/// Default load and entry address of a raw image.
inline constexpr uint64_t kRawImageDefaultLoad = 0x7c00;
/// Stack pointer given to raw images (grows down from just below 0x7c00).
inline constexpr uint64_t kRawImageStackTop = 0x7c00;

/// PVH: hvm_start_info, then the module list and the memory map.
inline constexpr uint64_t kPvhStartInfoAddr = 0x8000;
inline constexpr uint64_t kPvhModlistAddr = 0x8040;
inline constexpr uint64_t kPvhMemmapAddr = 0x8080;
/// Maximum number of PVH memory map entries (to 0x8fff).
inline constexpr uint64_t kPvhMemmapMaxEntries = (0x9000 - kPvhMemmapAddr) / 24;

/// Initial stack pointer for kernel boots (the kernels set their own at once).
inline constexpr uint64_t kKernelStackTop = 0x9ff0;

/// Kernel command line buffer and its capacity (including the NUL).
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineCapacity = 0x10000;

/// e820: [0, kEbdaStart) usable, [kEbdaStart, 1 MiB) reserved.
inline constexpr uint64_t kEbdaStart = 0x9fc00;
/// Where the Intel MP table lives: [kMpTableAddr, kMpTableEnd).
inline constexpr uint64_t kMpTableAddr = 0xf0000;
inline constexpr uint64_t kMpTableEnd = 0x100000;

/// Default load address of a kernel (the traditional 1 MiB).
inline constexpr uint64_t kKernelLoadAddr = 0x100000;

}  // namespace godwit::boot
