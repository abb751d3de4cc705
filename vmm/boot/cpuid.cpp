// Per-vCPU CPUID topology patching.
#include "vmm/boot/cpuid.h"

#include <algorithm>
#include <bit>

namespace godwit::boot {
namespace {

constexpr uint32_t kLevelTypeSmt = 1;
constexpr uint32_t kLevelTypeCore = 2;

// Fills a leaf 0xB / 0x1F subleaf for a one-thread-per-core package.
void set_topology_subleaf(kvm_cpuid_entry2& e, uint32_t subleaf, uint32_t apic_id, uint32_t count) {
  const uint32_t core_shift = count <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(count - 1));
  e.index = subleaf;
  e.flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  e.edx = apic_id;
  switch (subleaf) {
    case 0:
      e.eax = 0;  // no SMT bits in the APIC ID
      e.ebx = 1;
      e.ecx = (kLevelTypeSmt << 8) | subleaf;
      break;
    case 1:
      e.eax = core_shift;
      e.ebx = count;
      e.ecx = (kLevelTypeCore << 8) | subleaf;
      break;
    default:
      e.eax = 0;
      e.ebx = 0;
      e.ecx = subleaf;  // level type 0: invalid, ends the enumeration
      break;
  }
}

// Replaces every entry of `function` by subleaves 0..2 built for this vCPU.
void replace_topology_leaf(std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                           uint32_t apic_id, uint32_t count) {
  auto first = std::find_if(entries.begin(), entries.end(),
                            [&](const kvm_cpuid_entry2& e) { return e.function == function; });
  if (first == entries.end()) return;
  kvm_cpuid_entry2 base = *first;
  size_t position = static_cast<size_t>(first - entries.begin());
  std::erase_if(entries, [&](const kvm_cpuid_entry2& e) { return e.function == function; });
  std::vector<kvm_cpuid_entry2> leaves;
  for (uint32_t subleaf = 0; subleaf < 3; ++subleaf) {
    kvm_cpuid_entry2 e = base;
    set_topology_subleaf(e, subleaf, apic_id, count);
    leaves.push_back(e);
  }
  entries.insert(entries.begin() + static_cast<std::ptrdiff_t>(position), leaves.begin(),
                 leaves.end());
}

}  // namespace

std::vector<kvm_cpuid_entry2> make_vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                              uint32_t vcpu_index, uint32_t vcpu_count) {
  std::vector<kvm_cpuid_entry2> entries(supported.begin(), supported.end());
  const uint32_t count = std::max<uint32_t>(vcpu_count, 1);
  const uint32_t apic_id = vcpu_index;
  for (kvm_cpuid_entry2& e : entries) {
    if (e.function == 1) {
      e.ebx = (e.ebx & 0x0000ffff) | ((apic_id & 0xff) << 24) |
              ((std::min<uint32_t>(count, 255)) << 16);
      e.ecx |= kCpuidHypervisorBit;
      if (count > 1)
        e.edx |= kCpuidHttBit;
      else
        e.edx &= ~kCpuidHttBit;
    } else if (e.function == 4 && (e.eax & 0x1f) != 0) {  // type 0: no more caches
      const uint32_t cache_level = (e.eax >> 5) & 0x7;
      const uint32_t sharing = cache_level >= 3 ? count - 1 : 0;
      e.eax = (e.eax & 0x3fff) | ((std::min<uint32_t>(sharing, 0xfff)) << 14) |
              ((std::min<uint32_t>(count - 1, 63)) << 26);
    }
  }
  replace_topology_leaf(entries, 0xb, apic_id, count);
  replace_topology_leaf(entries, 0x1f, apic_id, count);
  return entries;
}

}  // namespace godwit::boot
