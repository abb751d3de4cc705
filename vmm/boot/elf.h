// ELF kernel loader (ELF64 x86-64 and ELF32 i386). PT_LOAD segments are copied
// to their physical addresses (p_paddr; p_filesz bytes, zero-filled to
// p_memsz). Entry:
//   - a PVH note (XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE, owner "Xen"):
//     32-bit protected mode, paging off, at the note's address, EBX =
//     hvm_start_info (pvh.h); the initrd is module 0;
//   - otherwise ELF64: long mode at e_entry with the Linux 64-bit boot protocol
//     (RSI = zero page with a synthesized setup header);
//   - otherwise ELF32: 32-bit protected mode at e_entry, ESI = zero page.
// Segments must lie in RAM at or above 1 MiB (below are the boot structures).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/boot_entry.h"

namespace godwit::boot {

/// XEN_ELFNOTE_PHYS32_ENTRY: the note type carrying the PVH entry point.
inline constexpr uint32_t kXenElfnotePhys32Entry = 18;

/// One PT_LOAD segment.
struct ElfSegment {
  uint64_t paddr = 0;
  uint64_t offset = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
};

/// A validated ELF kernel.
struct ElfKernel {
  bool is64 = false;
  uint64_t entry = 0;                 ///< e_entry
  std::optional<uint64_t> pvh_entry;  ///< from the PVH note, if any
  std::vector<ElfSegment> segments;   ///< PT_LOAD segments with p_memsz > 0
  uint64_t end = 0;                   ///< highest paddr + memsz
};

/// True when `file` starts with the ELF magic.
[[nodiscard]] bool looks_like_elf(std::span<const uint8_t> file);

/// Parses and validates headers, program headers and notes against the file
/// (class, little-endian, x86 machine, header and segment bounds, p_filesz <=
/// p_memsz, no overlapping segments, entry inside a segment).
[[nodiscard]] Result<ElfKernel> parse_elf_kernel(std::span<const uint8_t> file);

/// Loads an ELF kernel with its command line and optional initrd; `path`
/// only names the file in errors. The MP table is written by load_kernel().
[[nodiscard]] Result<BootEntry> load_elf(GuestMemory& memory, std::span<const uint8_t> file,
                                         const std::string& path, std::string_view cmdline,
                                         const std::string& initrd_path);

}  // namespace godwit::boot
