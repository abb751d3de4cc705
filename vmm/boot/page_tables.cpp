// Identity page tables for long-mode boot entries.
#include "vmm/boot/page_tables.h"

#include <array>

#include "vmm/boot/boot_layout.h"

namespace godwit::boot {

Result<uint64_t> write_identity_page_tables(GuestMemory& memory) {
  constexpr uint64_t kTableFlags = kPtePresent | kPteWritable;
  constexpr uint64_t k2MiB = 2 * kMiB;

  std::array<uint64_t, 512> pml4{};
  pml4[0] = kPdptAddr | kTableFlags;
  std::array<uint64_t, 512> pdpt{};
  for (uint64_t i = 0; i < kPageDirectories; ++i)
    pdpt[i] = (kPageDirAddr + i * 0x1000) | kTableFlags;

  auto context = [](const Error& e) { return e.context("writing identity page tables at 0x1000"); };
  if (auto r = memory.write_obj(kPml4Addr, pml4); !r) return fail(context(r.error()));
  if (auto r = memory.write_obj(kPdptAddr, pdpt); !r) return fail(context(r.error()));
  for (uint64_t dir = 0; dir < kPageDirectories; ++dir) {
    std::array<uint64_t, 512> pd{};
    for (uint64_t i = 0; i < pd.size(); ++i) {
      uint64_t address = (dir * 512 + i) * k2MiB;
      uint64_t flags = kPtePresent | kPteWritable | kPteLargePage;
      if (address >= kLowRamEnd) flags |= kPteCacheDisable | kPteWriteThrough;
      pd[i] = address | flags;
    }
    if (auto r = memory.write_obj(kPageDirAddr + dir * 0x1000, pd); !r)
      return fail(context(r.error()));
  }
  return kPml4Addr;
}

}  // namespace godwit::boot
