// bzImage parsing and loading (Linux x86 boot protocol, 64-bit entry).
#include "vmm/boot/bzimage.h"

#include <algorithm>
#include <cstring>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/gdt.h"
#include "vmm/boot/guest_range.h"
#include "vmm/boot/linux_payload.h"
#include "vmm/boot/page_tables.h"

namespace godwit::boot {
namespace {

constexpr uint64_t kSectorSize = 512;
constexpr uint64_t kEntry64Offset = 0x200;
// The header lies within the zero page's hdr field whatever the jump says.
constexpr uint64_t kSetupHeaderEnd = kSetupHeaderOffset + sizeof(SetupHeader);

uint16_t read_u16(std::span<const uint8_t> file, uint64_t offset) {
  return static_cast<uint16_t>(file[offset] | (file[offset + 1] << 8));
}

std::string protocol_name(uint16_t version) {
  return std::to_string(version >> 8) + "." + (((version & 0xff) < 10) ? "0" : "") +
         std::to_string(version & 0xff);
}

}  // namespace

bool looks_like_bzimage(std::span<const uint8_t> file) {
  if (file.size() >= 0x206 && std::memcmp(file.data() + 0x202, "HdrS", 4) == 0) return true;
  return file.size() >= 0x200 && read_u16(file, 0x1fe) == kBootFlag;
}

Result<BzImage> parse_bzimage(std::span<const uint8_t> file) {
  if (file.size() < 0x206)
    return fail("truncated: " + std::to_string(file.size()) +
                " bytes is too short for the setup header");
  if (std::memcmp(file.data() + 0x202, "HdrS", 4) != 0)
    return fail(
        "no \"HdrS\" magic at offset 0x202 (not a Linux bzImage, or older than protocol 2.00)");
  if (file.size() < kSetupHeaderEnd)
    return fail("truncated: " + std::to_string(file.size()) + " bytes cut off the setup header");

  BzImage image;
  // The header ends at 0x202 + the byte at 0x201; copy no more than the
  // structure we know (newer fields stay zero).
  uint64_t header_end = std::min<uint64_t>(0x202 + file[0x201], kSetupHeaderEnd);
  std::memcpy(&image.header, file.data() + kSetupHeaderOffset, header_end - kSetupHeaderOffset);
  const SetupHeader& h = image.header;
  if (h.version < kMinBootProtocol)
    return fail("boot protocol " + protocol_name(h.version) + " is too old (2.06 or newer needed)");
  if (!(h.loadflags & kLoadedHigh))
    return fail("a zImage (loaded low) is not supported; only bzImage kernels are");
  if (h.version >= 0x020c && !(h.xloadflags & kXlfKernel64))
    return fail("the kernel has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)");

  uint64_t setup_sects = h.setup_sects == 0 ? 4 : h.setup_sects;
  image.setup_size = (setup_sects + 1) * kSectorSize;
  image.kernel_offset = image.setup_size;
  if (image.setup_size >= file.size())
    return fail("truncated: the setup code needs " + std::to_string(image.setup_size) +
                " bytes but the file has " + std::to_string(file.size()));
  image.kernel_size = file.size() - image.setup_size;
  uint64_t declared = uint64_t{h.syssize} * 16;
  if (declared > image.kernel_size)
    return fail("truncated: the header declares a " + std::to_string(declared) +
                "-byte kernel (syssize) but only " + std::to_string(image.kernel_size) +
                " bytes follow the setup code");
  image.memory_needed = image.kernel_size;
  if (h.version >= 0x020a) image.memory_needed = std::max<uint64_t>(image.kernel_size, h.init_size);
  return image;
}

uint64_t bzimage_load_address(const BzImage& image, const GuestMemory& memory) {
  const SetupHeader& h = image.header;
  if (h.version >= 0x020a && h.relocatable_kernel && h.pref_address >= kKernelLoadAddr &&
      h.pref_address + image.memory_needed <= kIdentityMapSize &&
      check_in_ram(memory, h.pref_address, image.memory_needed, "kernel"))
    return h.pref_address;
  return kKernelLoadAddr;
}

Result<BootEntry> load_bzimage(GuestMemory& memory, std::span<const uint8_t> file,
                               const std::string& path, std::string_view cmdline,
                               const std::string& initrd_path) {
  const std::string context = "loading bzImage " + path;
  auto parsed = parse_bzimage(file);
  if (!parsed) return fail(parsed.error().context(context));
  const BzImage& image = *parsed;

  const uint64_t load = bzimage_load_address(image, memory);
  if (auto fits = check_in_ram(memory, load, image.memory_needed, "kernel (with init_size)"); !fits)
    return fail(fits.error().context(context));
  if (auto r = memory.write(load, file.subspan(image.kernel_offset)); !r)
    return fail(r.error().context(context));

  auto payload = write_cmdline_and_initrd(memory, cmdline, image.header.cmdline_size, initrd_path,
                                          load + image.memory_needed, image.header.initrd_addr_max);
  if (!payload) return fail(payload.error().context(context));

  LinuxBootInputs inputs{.cmdline_addr = payload->cmdline_addr,
                         .initrd_addr = payload->initrd_addr,
                         .initrd_size = payload->initrd_size,
                         .kernel_addr = load};
  auto params = make_boot_params(image.header, inputs, e820_map(memory));
  if (!params) return fail(params.error().context(context));
  if (auto r = memory.write_obj(kZeroPageAddr, *params); !r)
    return fail(r.error().context(context));

  auto cr3 = write_identity_page_tables(memory);
  if (!cr3) return fail(cr3.error().context(context));
  if (auto r = write_boot_gdt(memory, CpuMode::long64); !r) return fail(r.error().context(context));

  BootEntry entry;
  entry.mode = CpuMode::long64;
  entry.rip = load + kEntry64Offset;
  entry.rsp = kKernelStackTop;
  entry.rsi = kZeroPageAddr;
  entry.paging = true;
  entry.cr3 = *cr3;
  entry.gdt_base = kGdtAddr;
  entry.gdt_limit = kGdtEntries * 8 - 1;
  entry.image_base = load;
  entry.image_size = image.kernel_size;
  return entry;
}

}  // namespace godwit::boot
