// Zero-page (struct boot_params) builder for the Linux 64-bit boot protocol.
#include "vmm/boot/boot_params.h"

#include <cstring>

#include "vmm/boot/guest_range.h"

namespace godwit::boot {

SetupHeader synthesized_setup_header() {
  SetupHeader header{};
  header.boot_flag = kBootFlag;
  header.header = kSetupHeaderMagic;
  header.version = 0x020f;
  header.loadflags = kLoadedHigh;
  header.initrd_addr_max = 0x7fffffff;
  header.kernel_alignment = 0x1000000;
  header.relocatable_kernel = 1;
  header.xloadflags = kXlfKernel64;
  header.cmdline_size = 0xffff;
  return header;
}

Result<BootParams> make_boot_params(const SetupHeader& header, const LinuxBootInputs& inputs,
                                    std::span<const E820Range> e820) {
  if (e820.size() > kE820MaxEntries)
    return fail("building the zero page: " + std::to_string(e820.size()) +
                " memory ranges exceed the 128 e820 slots");
  for (uint64_t address :
       {inputs.cmdline_addr, inputs.initrd_addr + inputs.initrd_size, inputs.kernel_addr})
    if (address > 0xffffffff)
      return fail("building the zero page: address " + hex(address) +
                  " needs the ext_* fields (above 4 GiB), which are not supported");

  BootParams params;
  std::memset(&params, 0, sizeof params);
  params.hdr = header;
  params.hdr.type_of_loader = kLoaderUndefined;
  params.hdr.loadflags |= kCanUseHeap;
  params.hdr.heap_end_ptr = 0xde00;  // 0xe000 - 0x200, as boot.rst recommends
  params.hdr.vid_mode = kVidModeNormal;
  params.hdr.code32_start = static_cast<uint32_t>(inputs.kernel_addr);
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(inputs.cmdline_addr);
  params.hdr.ramdisk_image = static_cast<uint32_t>(inputs.initrd_addr);
  params.hdr.ramdisk_size = static_cast<uint32_t>(inputs.initrd_size);
  params.e820_entries = static_cast<uint8_t>(e820.size());
  for (size_t i = 0; i < e820.size(); ++i) {
    params.e820_table[i].addr = e820[i].addr;
    params.e820_table[i].size = e820[i].size;
    params.e820_table[i].type = e820[i].type;
  }
  return params;
}

Result<void> link_setup_data(GuestMemory& memory, uint64_t zero_page, uint64_t chain_gpa) {
  if (chain_gpa == 0) return fail("linking setup_data: the chain address is 0");
  auto read = memory.read_obj<BootParams>(zero_page);
  if (!read) return fail(read.error().context("linking setup_data"));
  BootParams params = *read;
  if (params.hdr.version < kSetupDataMinVersion)
    return fail("linking setup_data: the kernel's boot protocol " + hex(params.hdr.version) +
                " predates 2.09 (no setup_data field)");
  params.hdr.setup_data = chain_gpa;
  if (auto r = memory.write_obj(zero_page, params); !r)
    return fail(r.error().context("linking setup_data"));
  return {};
}

}  // namespace godwit::boot
