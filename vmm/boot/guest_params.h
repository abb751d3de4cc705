// Guest parameter tables (docs/guest-abi.md): parsing of --guest-param items
// ("ab.pages=25600,ab.delay=0") and patching of the tables a loaded image
// carries. Table layout, 16-byte aligned in the first 64 KiB of the image:
//
//   0   "GWPARAM\0"            8   guest name (NUL-padded, 8 bytes)
//   16  entry count N (LE32)   20  reserved
//   24  N x { key (12 bytes, NUL-padded), value (LE32) }
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::boot {

/// Magic at the start of a parameter table.
inline constexpr char kGuestParamMagic[8] = {'G', 'W', 'P', 'A', 'R', 'A', 'M', '\0'};
/// How far into the image tables are searched, and their alignment.
inline constexpr uint64_t kGuestParamSearchWindow = 64 * 1024;
inline constexpr uint64_t kGuestParamAlignment = 16;

/// One NAME.KEY=VALUE assignment.
struct GuestParam {
  std::string guest;
  std::string key;
  uint32_t value = 0;
  friend bool operator==(const GuestParam&, const GuestParam&) = default;
};

/// Parses items, each "NAME.KEY=VALUE" or a comma-separated list of them;
/// VALUE is decimal or 0x-hex and must fit in 32 bits; NAME <= 8 and KEY <= 12 bytes.
[[nodiscard]] Result<std::vector<GuestParam>> parse_guest_params(
    std::span<const std::string> items);

/// One table found in an image.
struct GuestParamTable {
  uint64_t gpa = 0;  ///< address of the magic
  std::string guest;
  std::vector<std::string> keys;
};

/// Finds the tables in [image_gpa, image_gpa + min(image_size, 64 KiB)),
/// at offsets from image_gpa that are multiples of 16.
[[nodiscard]] Result<std::vector<GuestParamTable>> find_guest_param_tables(
    const GuestMemory& memory, uint64_t image_gpa, uint64_t image_size);

/// Writes every parameter into its table. Errors name the parameter and what
/// the image offers (table names, or the keys of the table).
[[nodiscard]] Result<void> patch_guest_params(GuestMemory& memory, uint64_t image_gpa,
                                              uint64_t image_size,
                                              std::span<const GuestParam> params);

}  // namespace godwit::boot
