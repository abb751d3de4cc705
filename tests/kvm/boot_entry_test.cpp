// Runs tiny raw images on a real vCPU in each boot mode: proves that the GDT,
// the identity page tables and make_initial_cpu_state() give KVM a state it
// accepts and executes, and that make_vcpu_cpuid() reaches the guest (the
// image reports CPUID leaf 1 EBX[31:24], the APIC ID, on port 0x501).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "kvm/system.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "test_util.h"
#include "vmm/boot/cpu_state.h"
#include "vmm/boot/cpuid.h"
#include "vmm/boot/raw_image.h"

namespace godwit::boot {
namespace {

constexpr uint16_t kReportPort = 0x501;

// mov eax,1; cpuid; mov eax,ebx; shr eax,24; mov edx,0x501; out dx,al; hlt
// (32-bit operand encodings; real mode adds 0x66 prefixes).
std::vector<uint8_t> report_apic_id_code(CpuMode mode) {
  if (mode == CpuMode::real16)
    return {0x66, 0xb8, 1,    0,    0,  0,    0x0f, 0xa2, 0x66, 0x89,
            0xd8, 0x66, 0xc1, 0xe8, 24, 0xba, 0x01, 0x05, 0xee, 0xf4};
  return {0xb8, 1,  0,    0,    0,    0x0f, 0xa2, 0x89, 0xd8, 0xc1,
          0xe8, 24, 0xba, 0x01, 0x05, 0,    0,    0xee, 0xf4};
}

struct RunResult {
  uint8_t reported = 0xff;
  kvm_sregs sregs{};
};

Result<RunResult> boot_and_run(const std::string& spec_suffix, CpuMode mode, uint32_t vcpu_id,
                               uint32_t vcpu_count) {
  auto memory = TRY(GuestMemory::create(
      {.size = 16 * kMiB, .backing = MemoryBacking::memfd, .hugetlbfs_dir = {}}));
  std::string path = test::build_path("boot-entry-" + std::to_string(::getpid()) + ".img");
  auto code = report_apic_id_code(mode);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(code.data()), code.size());
  auto spec = TRY(parse_image_spec(path + spec_suffix));
  auto entry = load_raw_image(*memory, spec);
  ::unlink(path.c_str());
  if (!entry) return fail(entry.error());

  auto system = TRY(kvm::System::open());
  auto vm = TRY(system.create_vm());
  for (const MemoryRegion& region : memory->regions())
    TRY_VOID(vm->set_user_memory_region(region.slot, 0, region.gpa, region.size, region.host));
  auto vcpu = TRY(vm->create_vcpu(vcpu_id));
  auto supported = TRY(system.supported_cpuid());
  TRY_VOID(vcpu->set_cpuid(make_vcpu_cpuid(supported, vcpu_id, vcpu_count)));
  kvm_regs regs{};
  kvm_sregs sregs = TRY(vcpu->get_sregs());
  TRY_VOID(make_initial_cpu_state(*entry, regs, sregs));
  TRY_VOID(vcpu->set_sregs(sregs));
  TRY_VOID(vcpu->set_regs(regs));

  RunResult result;
  for (int exits = 0; exits < 100; ++exits) {
    auto exit = TRY(vcpu->run());
    if (auto* out = std::get_if<kvm::IoOut>(&exit); out && out->port == kReportPort) {
      result.reported = out->data[0];
      continue;
    }
    if (std::holds_alternative<kvm::Interrupted>(exit)) continue;
    if (std::holds_alternative<kvm::Hlt>(exit)) {
      result.sregs = TRY(vcpu->get_sregs());
      return result;
    }
    return fail("unexpected exit: " + kvm::describe(exit));
  }
  return fail("the guest did not halt");
}

TEST(BootEntryOnKvm, RealModeBootSector) {
  GODWIT_REQUIRE_KVM();
  auto r = boot_and_run("", CpuMode::real16, 0, 1);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->reported, 0);
  EXPECT_EQ(r->sregs.cr0 & kCr0Pe, 0u);
}

TEST(BootEntryOnKvm, ProtectedModeImage) {
  GODWIT_REQUIRE_KVM();
  auto r = boot_and_run(",load=0x100000,mode=protected", CpuMode::protected32, 1, 2);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->reported, 1);
  EXPECT_EQ(r->sregs.cr0 & (kCr0Pe | kCr0Pg), kCr0Pe);
}

TEST(BootEntryOnKvm, LongModeImageRunsThroughTheIdentityMap) {
  GODWIT_REQUIRE_KVM();
  auto r = boot_and_run(",load=0x200000,entry=0x200000,mode=long", CpuMode::long64, 3, 4);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->reported, 3);
  EXPECT_EQ(r->sregs.efer & kEferLma, kEferLma);
  EXPECT_EQ(r->sregs.cs.l, 1);
}

}  // namespace
}  // namespace godwit::boot
