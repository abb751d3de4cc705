// Builds the e820-style memory map from the guest memory layout.
#include "vmm/boot/e820.h"

#include <algorithm>

#include "vmm/boot/boot_layout.h"

namespace godwit::boot {

std::vector<E820Range> e820_map(const GuestMemory& memory) {
  std::vector<E820Range> map;
  for (const MemoryRegion& region : memory.regions()) {
    if (region.gpa != 0) {
      map.push_back({region.gpa, region.size, kE820Ram});
      continue;
    }
    map.push_back({0, std::min(region.size, kEbdaStart), kE820Ram});
    map.push_back({kEbdaStart, kMiB - kEbdaStart, kE820Reserved});
    if (region.size > kMiB) map.push_back({kMiB, region.size - kMiB, kE820Ram});
  }
  std::sort(map.begin(), map.end(),
            [](const E820Range& a, const E820Range& b) { return a.addr < b.addr; });
  return map;
}

}  // namespace godwit::boot
