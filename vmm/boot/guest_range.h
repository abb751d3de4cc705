// Helpers shared by the loaders: reading input files, checking that a guest
// range is RAM (with errors that say whether it hits the MMIO hole or runs
// past the end of RAM), and formatting addresses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::boot {

/// Formats an address as "0x7c00".
[[nodiscard]] std::string hex(uint64_t value);
/// Formats a range as "[0x100000, 0x200000)".
[[nodiscard]] std::string hex_range(uint64_t start, uint64_t size);
/// True when [a, a+alen) and [b, b+blen) share a byte.
[[nodiscard]] bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);
/// Reads a whole file; errors name it as `what` ("reading kernel /x: No such file or directory").
[[nodiscard]] Result<std::vector<uint8_t>> read_file(const std::string& path,
                                                     std::string_view what);
/// Fails unless [gpa, gpa+size) lies inside one RAM region. The message names
/// `what`, the range, and whether it overlaps the MMIO hole or lies past RAM.
[[nodiscard]] Result<void> check_in_ram(const GuestMemory& memory, uint64_t gpa, uint64_t size,
                                        std::string_view what);
/// End of the RAM region that starts at 0 (min(RAM, 3 GiB)).
[[nodiscard]] uint64_t low_ram_end(const GuestMemory& memory);

}  // namespace godwit::boot
