// bzImage loader per the Linux x86 boot protocol (>= 2.06): the protected-mode
// kernel goes to 1 MiB, or to pref_address when the kernel is relocatable and
// it fits there; the zero page at 0x7000 carries the setup header, command
// line, initrd and e820 map; the vCPU enters the 64-bit entry point
// (load + 0x200) in long mode with identity page tables and RSI = zero page,
// as Firecracker and Cloud Hypervisor do.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/boot_entry.h"
#include "vmm/boot/boot_params.h"

namespace godwit::boot {

/// Oldest supported boot protocol (cmdline_size appeared in 2.06).
inline constexpr uint16_t kMinBootProtocol = 0x0206;

/// The parts of a validated bzImage.
struct BzImage {
  SetupHeader header{};        ///< setup header as found in the file
  uint64_t setup_size = 0;     ///< (setup_sects + 1) * 512, setup_sects 0 meaning 4
  uint64_t kernel_offset = 0;  ///< file offset of the protected-mode kernel (= setup_size)
  uint64_t kernel_size = 0;    ///< its size in the file
  uint64_t memory_needed = 0;  ///< max(kernel_size, init_size): bytes reserved at the load address
};

/// True when `file` looks like a bzImage (boot flag 0xaa55 or "HdrS" magic).
[[nodiscard]] bool looks_like_bzimage(std::span<const uint8_t> file);

/// Validates a bzImage: size, "HdrS" magic, protocol >= 2.06, LOADED_HIGH,
/// a 64-bit entry point, the setup and kernel parts inside the file.
[[nodiscard]] Result<BzImage> parse_bzimage(std::span<const uint8_t> file);

/// Where the protected-mode kernel is loaded: pref_address when relocatable
/// (protocol >= 2.10) and [pref_address, + memory_needed) is RAM, else 1 MiB.
[[nodiscard]] uint64_t bzimage_load_address(const BzImage& image, const GuestMemory& memory);

/// Loads a bzImage, its command line and optional initrd, the zero page,
/// page tables and GDT; returns the long-mode entry. `path` only names the
/// file in errors. The MP table is written by load_kernel().
[[nodiscard]] Result<BootEntry> load_bzimage(GuestMemory& memory, std::span<const uint8_t> file,
                                             const std::string& path, std::string_view cmdline,
                                             const std::string& initrd_path);

}  // namespace godwit::boot
