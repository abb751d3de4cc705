// The Linux x86 zero page (struct boot_params) and its setup header, defined
// here as packed structs with their documented offsets pinned by
// static_assert (Documentation/arch/x86/boot.rst and zero-page.rst), plus the
// builder shared by the bzImage and the 64-bit ELF boot paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "vmm/boot/e820.h"

namespace godwit::boot {

/// The setup header, at offset 0x1f1 of both a bzImage and the zero page.
struct [[gnu::packed]] SetupHeader {
  uint8_t setup_sects;
  uint16_t root_flags;
  uint32_t syssize;
  uint16_t ram_size;
  uint16_t vid_mode;
  uint16_t root_dev;
  uint16_t boot_flag;
  uint16_t jump;
  uint32_t header;
  uint16_t version;
  uint32_t realmode_swtch;
  uint16_t start_sys_seg;
  uint16_t kernel_version;
  uint8_t type_of_loader;
  uint8_t loadflags;
  uint16_t setup_move_size;
  uint32_t code32_start;
  uint32_t ramdisk_image;
  uint32_t ramdisk_size;
  uint32_t bootsect_kludge;
  uint16_t heap_end_ptr;
  uint8_t ext_loader_ver;
  uint8_t ext_loader_type;
  uint32_t cmd_line_ptr;
  uint32_t initrd_addr_max;
  uint32_t kernel_alignment;
  uint8_t relocatable_kernel;
  uint8_t min_alignment;
  uint16_t xloadflags;
  uint32_t cmdline_size;
  uint32_t hardware_subarch;
  uint64_t hardware_subarch_data;
  uint32_t payload_offset;
  uint32_t payload_length;
  uint64_t setup_data;
  uint64_t pref_address;
  uint32_t init_size;
  uint32_t handover_offset;
  uint32_t kernel_info_offset;
};

/// Offset of the setup header in the image and in the zero page.
inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
/// "HdrS", SetupHeader::header.
inline constexpr uint32_t kSetupHeaderMagic = 0x53726448;
/// SetupHeader::boot_flag.
inline constexpr uint16_t kBootFlag = 0xaa55;
/// loadflags bits.
inline constexpr uint8_t kLoadedHigh = 0x01;
inline constexpr uint8_t kCanUseHeap = 0x80;
/// xloadflags bit: the kernel has the 64-bit entry point at load + 0x200.
inline constexpr uint16_t kXlfKernel64 = 0x01;
/// type_of_loader value for a loader without an assigned id.
inline constexpr uint8_t kLoaderUndefined = 0xff;
/// vid_mode "normal" (80x25 text).
inline constexpr uint16_t kVidModeNormal = 0xffff;

#define GODWIT_SETUP_OFFSET(field, offset) \
  static_assert(offsetof(SetupHeader, field) + kSetupHeaderOffset == (offset))
GODWIT_SETUP_OFFSET(setup_sects, 0x1f1);
GODWIT_SETUP_OFFSET(vid_mode, 0x1fa);
GODWIT_SETUP_OFFSET(boot_flag, 0x1fe);
GODWIT_SETUP_OFFSET(jump, 0x200);
GODWIT_SETUP_OFFSET(header, 0x202);
GODWIT_SETUP_OFFSET(version, 0x206);
GODWIT_SETUP_OFFSET(type_of_loader, 0x210);
GODWIT_SETUP_OFFSET(loadflags, 0x211);
GODWIT_SETUP_OFFSET(code32_start, 0x214);
GODWIT_SETUP_OFFSET(ramdisk_image, 0x218);
GODWIT_SETUP_OFFSET(ramdisk_size, 0x21c);
GODWIT_SETUP_OFFSET(heap_end_ptr, 0x224);
GODWIT_SETUP_OFFSET(cmd_line_ptr, 0x228);
GODWIT_SETUP_OFFSET(initrd_addr_max, 0x22c);
GODWIT_SETUP_OFFSET(kernel_alignment, 0x230);
GODWIT_SETUP_OFFSET(relocatable_kernel, 0x234);
GODWIT_SETUP_OFFSET(xloadflags, 0x236);
GODWIT_SETUP_OFFSET(cmdline_size, 0x238);
GODWIT_SETUP_OFFSET(pref_address, 0x258);
GODWIT_SETUP_OFFSET(init_size, 0x260);
#undef GODWIT_SETUP_OFFSET
static_assert(sizeof(SetupHeader) == 0x26c - 0x1f1);

/// One e820 entry as the zero page stores it (20 bytes, packed).
struct [[gnu::packed]] E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);

/// Number of e820 slots in the zero page.
inline constexpr size_t kE820MaxEntries = 128;

/// struct boot_params: only the fields the loaders fill are named.
struct [[gnu::packed]] BootParams {
  uint8_t unused_0[0x1e8];
  uint8_t e820_entries;  // 0x1e8
  uint8_t unused_1e9[0x1f1 - 0x1e9];
  SetupHeader hdr;  // 0x1f1
  uint8_t unused_26c[0x2d0 - 0x26c];
  E820Entry e820_table[kE820MaxEntries];  // 0x2d0
  uint8_t unused_cd0[0x1000 - 0xcd0];
};
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, hdr) == 0x1f1);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(sizeof(BootParams) == 0x1000);

/// What the loader fills into the zero page besides the copied header.
struct LinuxBootInputs {
  uint64_t cmdline_addr = 0;
  uint64_t initrd_addr = 0;  ///< 0 when there is no initrd
  uint64_t initrd_size = 0;
  uint64_t kernel_addr = 0;  ///< where the protected-mode kernel was loaded
};

/// A setup header for kernels without one (64-bit ELF vmlinux): boot flag,
/// "HdrS", protocol 2.15, 16 MiB alignment, 2 GiB - 1 initrd limit.
[[nodiscard]] SetupHeader synthesized_setup_header();

/// Builds the zero page: `header` copied in, type_of_loader 0xff, CAN_USE_HEAP
/// with heap_end_ptr 0xde00, vid_mode normal, the command line and initrd
/// pointers, and `e820` (fails if it has more than 128 entries or the
/// addresses need the ext_* fields above 4 GiB).
[[nodiscard]] Result<BootParams> make_boot_params(const SetupHeader& header,
                                                  const LinuxBootInputs& inputs,
                                                  std::span<const E820Range> e820);

/// Oldest boot protocol with hdr.setup_data (2.09).
inline constexpr uint16_t kSetupDataMinVersion = 0x0209;

/// Points hdr.setup_data of the zero page already written at `zero_page`
/// to the setup_data chain at `chain_gpa` (e.g. a SETUP_DTB entry); fails
/// naming the version when the kernel's boot protocol predates 2.09; a zero
/// `chain_gpa` is refused (it means "no chain").
[[nodiscard]] Result<void> link_setup_data(GuestMemory& memory, uint64_t zero_page,
                                           uint64_t chain_gpa);

}  // namespace godwit::boot
