// Writes the PVH start_info, module list and memory map.
#include "vmm/boot/pvh.h"

#include <vector>

#include "vmm/boot/boot_layout.h"

namespace godwit::boot {

Result<uint64_t> write_pvh_start_info(GuestMemory& memory, const LinuxPayload& payload,
                                      std::span<const E820Range> memory_map) {
  if (memory_map.size() > kPvhMemmapMaxEntries)
    return fail("writing PVH start_info: " + std::to_string(memory_map.size()) +
                " memory ranges exceed the " + std::to_string(kPvhMemmapMaxEntries) + " slots");
  std::vector<HvmMemmapEntry> table;
  for (const E820Range& range : memory_map)
    table.push_back({range.addr, range.size, range.type, 0});

  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = payload.cmdline_addr;
  info.memmap_paddr = kPvhMemmapAddr;
  info.memmap_entries = static_cast<uint32_t>(table.size());
  if (payload.initrd_size != 0) {
    info.nr_modules = 1;
    info.modlist_paddr = kPvhModlistAddr;
    HvmModlistEntry module{payload.initrd_addr, payload.initrd_size, 0, 0};
    if (auto r = memory.write_obj(kPvhModlistAddr, module); !r)
      return fail(r.error().context("writing the PVH module list"));
  }
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(table.data()),
                         table.size() * sizeof(HvmMemmapEntry));
  if (auto r = memory.write(kPvhMemmapAddr, bytes); !r)
    return fail(r.error().context("writing the PVH memory map"));
  if (auto r = memory.write_obj(kPvhStartInfoAddr, info); !r)
    return fail(r.error().context("writing PVH start_info"));
  return kPvhStartInfoAddr;
}

}  // namespace godwit::boot
