// Command line and initrd placement, shared by every kernel boot path
// (bzImage, 64-bit ELF, PVH): the command line goes to kCmdlineAddr, the
// initrd as high as possible (page-aligned) below both the kernel's initrd
// limit and the end of low RAM, and above the kernel.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::boot {

/// Where the command line and the initrd ended up.
struct LinuxPayload {
  uint64_t cmdline_addr = 0;
  uint64_t cmdline_length = 0;  ///< bytes without the terminating NUL
  uint64_t initrd_addr = 0;     ///< 0 when there is no initrd
  uint64_t initrd_size = 0;
};

/// Where the initrd of `initrd_size` bytes goes: the highest page-aligned
/// address with the initrd ending at or below min(initrd_addr_max + 1,
/// low_ram_end) and starting at or above `kernel_end`. Pure.
[[nodiscard]] Result<uint64_t> place_initrd(uint64_t initrd_size, uint64_t kernel_end,
                                            uint64_t initrd_addr_max, uint64_t low_ram_end);

/// Writes the NUL-terminated command line (at most `cmdline_max` bytes
/// without the NUL) and, when `initrd_path` is not empty, the initrd.
[[nodiscard]] Result<LinuxPayload> write_cmdline_and_initrd(
    GuestMemory& memory, std::string_view cmdline, uint64_t cmdline_max,
    const std::string& initrd_path, uint64_t kernel_end, uint64_t initrd_addr_max);

}  // namespace godwit::boot
