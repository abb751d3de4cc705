// Raw image loader (--image FILE[,load=ADDR][,entry=ADDR][,mode=real|protected|long]):
// copies a flat binary into guest memory and enters it in the requested mode.
// Protected mode gets a flat GDT at 0x500; long mode additionally gets
// identity page tables for [0, 4 GiB) at 0x1000-0x6fff (see boot_layout.h).
// The stack pointer starts at 0x7c00 in every mode.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/boot_entry.h"
#include "vmm/boot/boot_layout.h"

namespace godwit::boot {

/// A parsed --image option.
struct ImageSpec {
  std::string path;
  uint64_t load = kRawImageDefaultLoad;   ///< guest-physical load address
  uint64_t entry = kRawImageDefaultLoad;  ///< linear entry address (defaults to load)
  CpuMode mode = CpuMode::real16;
};

/// Parses "FILE[,load=ADDR][,entry=ADDR][,mode=real|protected|long]"; ADDR is
/// decimal or 0x-hex. When load is given and entry is not, entry = load.
[[nodiscard]] Result<ImageSpec> parse_image_spec(std::string_view spec);

/// Loads the image at spec.load and writes the boot structures its mode needs.
/// Fails for a missing or empty file, an image outside RAM or overlapping the
/// MMIO hole, an image overwriting the boot structures, or an entry address
/// the mode cannot reach.
[[nodiscard]] Result<BootEntry> load_raw_image(GuestMemory& memory, const ImageSpec& spec);

}  // namespace godwit::boot
