// make_initial_cpu_state for real, protected and long mode, and its checks.
#include <gtest/gtest.h>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/cpu_state.h"
#include "vmm/boot/gdt.h"

namespace godwit::boot {
namespace {

// What KVM_GET_SREGS returns for a fresh vCPU, in the fields we keep.
kvm_sregs fresh_sregs() {
  kvm_sregs sregs{};
  sregs.apic_base = 0xfee00900;
  sregs.cr0 = 0x60000010;
  return sregs;
}

BootEntry flat_entry(CpuMode mode, uint64_t rip) {
  BootEntry entry;
  entry.mode = mode;
  entry.rip = rip;
  entry.rsp = 0x9ff0;
  entry.gdt_base = kGdtAddr;
  entry.gdt_limit = 31;
  if (mode == CpuMode::long64) {
    entry.paging = true;
    entry.cr3 = kPml4Addr;
  }
  return entry;
}

TEST(CpuState, RealModeBootSectorIsZeroSegmentAndIp7c00) {
  BootEntry entry;
  entry.rip = 0x7c00;
  entry.rsp = 0x7c00;
  kvm_regs regs{};
  kvm_sregs sregs = fresh_sregs();
  ASSERT_TRUE(make_initial_cpu_state(entry, regs, sregs));
  EXPECT_EQ(regs.rip, 0x7c00u);
  EXPECT_EQ(regs.rsp, 0x7c00u);
  EXPECT_EQ(regs.rflags, 0x2u);
  EXPECT_EQ(sregs.cs.selector, 0);
  EXPECT_EQ(sregs.cs.base, 0u);
  EXPECT_EQ(sregs.cs.limit, 0xffffu);
  for (const kvm_segment* s : {&sregs.ds, &sregs.es, &sregs.ss, &sregs.fs, &sregs.gs}) {
    EXPECT_EQ(s->selector, 0);
    EXPECT_EQ(s->base, 0u);
  }
  EXPECT_EQ(sregs.cr0 & (kCr0Pe | kCr0Pg), 0u);
  EXPECT_EQ(sregs.efer, 0u);
  EXPECT_EQ(sregs.apic_base, 0xfee00900u);  // kept
}

TEST(CpuState, RealModeHighEntrySplitsIntoSegmentAndOffset) {
  BootEntry entry;
  entry.rip = 0x9abcd;
  kvm_regs regs{};
  kvm_sregs sregs = fresh_sregs();
  ASSERT_TRUE(make_initial_cpu_state(entry, regs, sregs));
  EXPECT_EQ(sregs.cs.selector, 0x9000);
  EXPECT_EQ(sregs.cs.base, 0x90000u);
  EXPECT_EQ(regs.rip, 0xabcdu);
  EXPECT_EQ(sregs.cs.base + regs.rip, 0x9abcdu);
}

TEST(CpuState, RealModeEntryMustBeBelowOneMiB) {
  BootEntry entry;
  entry.rip = 0x100000;
  kvm_regs regs{};
  kvm_sregs sregs = fresh_sregs();
  auto r = make_initial_cpu_state(entry, regs, sregs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not below 1 MiB"), std::string::npos) << r.error().message;
}

TEST(CpuState, ProtectedModeIsFlatWithPagingOff) {
  BootEntry entry = flat_entry(CpuMode::protected32, 0x1000000);
  entry.rbx = 0x8000;
  kvm_regs regs{};
  kvm_sregs sregs = fresh_sregs();
  ASSERT_TRUE(make_initial_cpu_state(entry, regs, sregs));
  EXPECT_EQ(regs.rip, 0x1000000u);
  EXPECT_EQ(regs.rbx, 0x8000u);
  EXPECT_EQ(sregs.cs.selector, kCodeSelector);
  EXPECT_EQ(sregs.cs.db, 1);
  EXPECT_EQ(sregs.cs.l, 0);
  EXPECT_EQ(sregs.cs.limit, 0xffffffffu);
  EXPECT_EQ(sregs.ss.selector, kDataSelector);
  EXPECT_EQ(sregs.ds.selector, kDataSelector);
  EXPECT_EQ(sregs.cr0 & kCr0Pe, kCr0Pe);
  EXPECT_EQ(sregs.cr0 & kCr0Pg, 0u);
  EXPECT_EQ(sregs.efer, 0u);
  EXPECT_EQ(sregs.gdt.base, kGdtAddr);
  EXPECT_EQ(sregs.gdt.limit, 31);
  // The hidden segment state equals what the GDT descriptors say.
  auto gdt = boot_gdt(CpuMode::protected32);
  EXPECT_EQ(encode_descriptor(sregs.cs), gdt[kCodeSelector / 8]);
  EXPECT_EQ(encode_descriptor(sregs.ds), gdt[kDataSelector / 8]);
}

TEST(CpuState, LongModeEnablesPaePagingAndLongModeBits) {
  BootEntry entry = flat_entry(CpuMode::long64, 0x1000200);
  entry.rsi = kZeroPageAddr;
  kvm_regs regs{};
  kvm_sregs sregs = fresh_sregs();
  ASSERT_TRUE(make_initial_cpu_state(entry, regs, sregs));
  EXPECT_EQ(regs.rip, 0x1000200u);
  EXPECT_EQ(regs.rsi, kZeroPageAddr);
  EXPECT_EQ(sregs.cr0 & (kCr0Pe | kCr0Pg), kCr0Pe | kCr0Pg);
  EXPECT_EQ(sregs.cr4 & kCr4Pae, kCr4Pae);
  EXPECT_EQ(sregs.efer, kEferLme | kEferLma);
  EXPECT_EQ(sregs.cr3, kPml4Addr);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cs.db, 0);
  EXPECT_EQ(encode_descriptor(sregs.cs), boot_gdt(CpuMode::long64)[kCodeSelector / 8]);
}

TEST(CpuState, RejectsInconsistentEntries) {
  kvm_regs regs{};
  kvm_sregs sregs = fresh_sregs();
  BootEntry no_paging = flat_entry(CpuMode::long64, 0x100000);
  no_paging.paging = false;
  EXPECT_FALSE(make_initial_cpu_state(no_paging, regs, sregs));
  BootEntry bad_cr3 = flat_entry(CpuMode::long64, 0x100000);
  bad_cr3.cr3 = 0x1234;
  EXPECT_FALSE(make_initial_cpu_state(bad_cr3, regs, sregs));
  BootEntry non_canonical = flat_entry(CpuMode::long64, 0x0000800000000000ull);
  EXPECT_FALSE(make_initial_cpu_state(non_canonical, regs, sregs));
  BootEntry high = flat_entry(CpuMode::protected32, 0x100000000ull);
  EXPECT_FALSE(make_initial_cpu_state(high, regs, sregs));
  BootEntry small_gdt = flat_entry(CpuMode::protected32, 0x100000);
  small_gdt.gdt_limit = 15;
  auto r = make_initial_cpu_state(small_gdt, regs, sregs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("GDT limit"), std::string::npos);
}

}  // namespace
}  // namespace godwit::boot
