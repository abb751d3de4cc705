// Getting the device tree to the guest: copied to a fixed guest address for
// the project's own guests (fdt_layout.h), or wrapped as a Linux SETUP_DTB
// setup_data entry that the bzImage loader chains into boot_params.hdr.setup_data.
//
//   setup_data (Linux arch/x86/include/uapi/asm/bootparam.h), little-endian:
//   offset 0   u64 next   guest address of the next entry, 0 ends the list
//          8   u32 type   2 = SETUP_DTB
//         12   u32 len    bytes of data that follow (the DTB's totalsize)
//         16   u8  data[len]
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::fdt {

/// setup_data type of a flattened device tree.
inline constexpr uint32_t kSetupDtb = 2;

/// The fixed header of a Linux setup_data entry.
struct SetupDataHeader {
  uint64_t next = 0;
  uint32_t type = 0;
  uint32_t len = 0;
};
static_assert(sizeof(SetupDataHeader) == 16, "struct setup_data header is 16 bytes");

/// Checks that `blob` is a complete DTB (valid header, totalsize == size()).
[[nodiscard]] Result<void> check_blob(std::span<const uint8_t> blob);

/// Copies `blob` into guest RAM at `gpa` (marking the pages dirty). Fails,
/// naming the address and sizes, unless the blob is a complete DTB of at most
/// kFdtMaxSize bytes (the area reserved at kFdtAddr), `gpa` is 8-byte aligned
/// (the DTB alignment rule) and the whole range is RAM.
[[nodiscard]] Result<void> write_fdt(GuestMemory& memory, uint64_t gpa,
                                     std::span<const uint8_t> blob);

/// The SETUP_DTB setup_data entry for `dtb`: the 16-byte header (next, type 2,
/// len = dtb size) followed by the DTB. Place it 8-byte aligned in RAM the
/// e820 map does not hand out, then point boot_params.hdr.setup_data (or the
/// previous entry's next) at it.
[[nodiscard]] Result<std::vector<uint8_t>> setup_dtb_entry(std::span<const uint8_t> dtb,
                                                           uint64_t next = 0);

}  // namespace godwit::fdt
