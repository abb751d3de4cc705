// System-level queries and error messages: API version, capabilities,
// supported CPUID, the MSR list and the MSRs that can really be saved.
#include <gtest/gtest.h>

#include <algorithm>

#include "kvm/system.h"
#include "kvm/vcpu.h"
#include "kvm/vcpu_state.h"
#include "kvm/vm.h"
#include "test_util.h"

namespace godwit::test {
namespace {

TEST(KvmSystem, OpensWithApiVersion12AndAnswersCapabilities) {
  GODWIT_REQUIRE_KVM();
  auto system = kvm::System::open();
  ASSERT_TRUE(system) << system.error().message;
  EXPECT_EQ(system->api_version(), 12);
  auto user_memory = system->check_extension(KVM_CAP_USER_MEMORY);
  ASSERT_TRUE(user_memory) << user_memory.error().message;
  EXPECT_GT(*user_memory, 0);
  auto mmap_size = system->vcpu_mmap_size();
  ASSERT_TRUE(mmap_size) << mmap_size.error().message;
  EXPECT_GE(*mmap_size, 4096);
}

TEST(KvmSystem, OpenOfMissingDeviceNamesThePath) {
  auto system = kvm::System::open("/nonexistent/kvm");
  ASSERT_FALSE(system);
  EXPECT_NE(system.error().message.find("open /nonexistent/kvm"), std::string::npos)
      << system.error().message;
  EXPECT_EQ(system.error().code, ENOENT);
}

TEST(KvmSystem, SupportedCpuidHasTheBasicLeaves) {
  GODWIT_REQUIRE_KVM();
  auto system = kvm::System::open();
  ASSERT_TRUE(system) << system.error().message;
  auto cpuid = system->supported_cpuid();
  ASSERT_TRUE(cpuid) << cpuid.error().message;
  ASSERT_FALSE(cpuid->empty());
  auto has_leaf = [&](uint32_t function) {
    return std::any_of(cpuid->begin(), cpuid->end(),
                       [&](const kvm_cpuid_entry2& e) { return e.function == function; });
  };
  EXPECT_TRUE(has_leaf(0));
  EXPECT_TRUE(has_leaf(1));
  EXPECT_TRUE(has_leaf(0x80000000u));
}

TEST(KvmSystem, MsrIndexListAndSaveableSubset) {
  GODWIT_REQUIRE_KVM();
  auto system = kvm::System::open();
  ASSERT_TRUE(system) << system.error().message;
  auto listed = system->msr_index_list();
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_FALSE(listed->empty());
  // IA32_TSC is saved by every KVM.
  EXPECT_NE(std::find(listed->begin(), listed->end(), 0x10u), listed->end());

  auto vm = system->create_vm();
  ASSERT_TRUE(vm) << vm.error().message;
  auto vcpu = (*vm)->create_vcpu(0);
  ASSERT_TRUE(vcpu) << vcpu.error().message;
  auto saveable = kvm::saveable_msrs(*system, **vcpu);
  ASSERT_TRUE(saveable) << saveable.error().message;
  ASSERT_FALSE(saveable->empty());
  for (uint32_t index : *saveable) {
    EXPECT_NE(std::find(listed->begin(), listed->end(), index), listed->end()) << index;
  }
  auto values = (*vcpu)->get_msrs(*saveable);
  ASSERT_TRUE(values) << values.error().message;
  EXPECT_EQ(values->size(), saveable->size());
}

TEST(KvmSystem, ErrorsNameTheIoctlAndItsArguments) {
  GODWIT_REQUIRE_KVM();
  auto system = kvm::System::open();
  ASSERT_TRUE(system) << system.error().message;
  auto vm = system->create_vm();
  ASSERT_TRUE(vm) << vm.error().message;

  // A guest address that is not page aligned is refused by KVM.
  static uint8_t backing[8192] __attribute__((aligned(4096)));
  auto bad_slot = (*vm)->set_user_memory_region(2, 0, 0x100000123, 4096, backing);
  ASSERT_FALSE(bad_slot);
  EXPECT_NE(bad_slot.error().message.find("KVM_SET_USER_MEMORY_REGION slot 2"), std::string::npos)
      << bad_slot.error().message;
  EXPECT_NE(bad_slot.error().message.find("gpa 0x100000123"), std::string::npos)
      << bad_slot.error().message;

  auto vcpu = (*vm)->create_vcpu(0);
  ASSERT_TRUE(vcpu) << vcpu.error().message;
  const uint32_t bogus[] = {0x10, 0xdeadbeef};
  auto msrs = (*vcpu)->get_msrs(bogus);
  ASSERT_FALSE(msrs);
  EXPECT_NE(msrs.error().message.find("MSR 0xdeadbeef"), std::string::npos) << msrs.error().message;
  kvm_msr_entry bogus_entry{};
  bogus_entry.index = 0xdeadbeef;
  auto set = (*vcpu)->set_msrs(std::span<const kvm_msr_entry>(&bogus_entry, 1));
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().message.find("MSR 0xdeadbeef"), std::string::npos) << set.error().message;
}

}  // namespace
}  // namespace godwit::test
