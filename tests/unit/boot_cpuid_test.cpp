// Per-vCPU CPUID topology: APIC IDs, counts, HTT and hypervisor bits, leaf 4,
// leaves 0xB/0x1F; other leaves untouched.
#include <gtest/gtest.h>

#include <algorithm>

#include "vmm/boot/cpuid.h"

namespace godwit::boot {
namespace {

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                      uint32_t edx, uint32_t flags = 0) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = flags;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

// Roughly what KVM_GET_SUPPORTED_CPUID reports on the PVM hosts (APIC ID 1 in leaf 1).
std::vector<kvm_cpuid_entry2> supported() {
  constexpr uint32_t kIndexed = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  return {
      leaf(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
      leaf(1, 0, 0x000806f8, 0x01020800, 0x7ffafbff, 0x0f8bfbff),
      leaf(4, 0, 0x00000121, 0x01c0003f, 0x3f, 0, kIndexed),    // L1d
      leaf(4, 1, 0x00000143, 0x03c0003f, 0x7ff, 0, kIndexed),   // L2
      leaf(4, 2, 0x00000163, 0x0380003f, 0xffff, 6, kIndexed),  // L3
      leaf(4, 3, 0, 0, 0, 0, kIndexed),                         // end
      leaf(7, 0, 0, 0x12345678, 0, 0, kIndexed),
      leaf(0xb, 0, 1, 2, 0x100, 1, kIndexed),
      leaf(0xb, 1, 4, 4, 0x201, 1, kIndexed),
      leaf(0x1f, 0, 1, 2, 0x100, 1, kIndexed),
      leaf(0x80000001, 0, 0, 0, 0x121, 0x2c100800),
  };
}

const kvm_cpuid_entry2* find(const std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                             uint32_t index) {
  auto it = std::find_if(entries.begin(), entries.end(), [&](const kvm_cpuid_entry2& e) {
    return e.function == function && e.index == index;
  });
  return it == entries.end() ? nullptr : &*it;
}

TEST(Cpuid, Leaf1CarriesApicIdCountHttAndHypervisorBit) {
  auto input = supported();
  for (uint32_t index : {0u, 1u, 3u}) {
    auto out = make_vcpu_cpuid(input, index, 4);
    const kvm_cpuid_entry2* l1 = find(out, 1, 0);
    ASSERT_NE(l1, nullptr);
    EXPECT_EQ(l1->ebx >> 24, index);
    EXPECT_EQ((l1->ebx >> 16) & 0xff, 4u);
    EXPECT_EQ(l1->ebx & 0xffff, 0x0800u);  // CLFLUSH size and brand index kept
    EXPECT_TRUE(l1->edx & kCpuidHttBit);
    EXPECT_TRUE(l1->ecx & kCpuidHypervisorBit);
    EXPECT_EQ(l1->eax, 0x000806f8u);
  }
}

TEST(Cpuid, SingleVcpuHasNoHtt) {
  auto in = supported();
  in[1].edx |= kCpuidHttBit;
  auto out = make_vcpu_cpuid(in, 0, 1);
  const kvm_cpuid_entry2* l1 = find(out, 1, 0);
  EXPECT_EQ(l1->ebx >> 24, 0u);
  EXPECT_EQ((l1->ebx >> 16) & 0xff, 1u);
  EXPECT_FALSE(l1->edx & kCpuidHttBit);
}

TEST(Cpuid, Leaf4ReportsCoresPerPackage) {
  auto out = make_vcpu_cpuid(supported(), 2, 6);
  for (uint32_t sub = 0; sub < 3; ++sub) {
    const kvm_cpuid_entry2* l4 = find(out, 4, sub);
    ASSERT_NE(l4, nullptr);
    EXPECT_EQ(l4->eax >> 26, 5u);
    EXPECT_EQ(l4->eax & 0x3fff, supported()[2 + sub].eax & 0x3fff);  // cache type/level kept
    uint32_t sharing = (l4->eax >> 14) & 0xfff;
    EXPECT_EQ(sharing, sub == 2 ? 5u : 0u) << "L3 shared by all cores, L1/L2 private";
  }
  EXPECT_EQ(find(out, 4, 3)->eax, 0u) << "the terminating null cache entry stays null";
}

TEST(Cpuid, ExtendedTopologyLeavesDescribeOneThreadPerCore) {
  for (uint32_t function : {0xbu, 0x1fu}) {
    auto out = make_vcpu_cpuid(supported(), 5, 6);
    const kvm_cpuid_entry2* smt = find(out, function, 0);
    const kvm_cpuid_entry2* core = find(out, function, 1);
    const kvm_cpuid_entry2* end = find(out, function, 2);
    ASSERT_TRUE(smt && core && end);
    EXPECT_EQ(smt->eax, 0u);
    EXPECT_EQ(smt->ebx, 1u);
    EXPECT_EQ(smt->ecx, 0x100u);
    EXPECT_EQ(core->eax, 3u) << "6 cores need 3 APIC ID bits";
    EXPECT_EQ(core->ebx, 6u);
    EXPECT_EQ(core->ecx, 0x201u);
    EXPECT_EQ((end->ecx >> 8) & 0xff, 0u);
    for (const auto* e : {smt, core, end}) {
      EXPECT_EQ(e->edx, 5u);
      EXPECT_TRUE(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
    }
    EXPECT_EQ(
        std::count_if(out.begin(), out.end(), [&](auto& e) { return e.function == function; }), 3);
  }
}

TEST(Cpuid, OtherLeavesAreKeptAndAbsentLeavesNotAdded) {
  auto in = supported();
  in.erase(std::remove_if(in.begin(), in.end(), [](auto& e) { return e.function == 0x1f; }),
           in.end());
  auto out = make_vcpu_cpuid(in, 1, 2);
  EXPECT_EQ(find(out, 0x1f, 0), nullptr);
  EXPECT_EQ(find(out, 7, 0)->ebx, 0x12345678u);
  EXPECT_EQ(find(out, 0x80000001, 0)->edx, 0x2c100800u);
  EXPECT_EQ(find(out, 0, 0)->eax, 0x1fu);
}

}  // namespace
}  // namespace godwit::boot
