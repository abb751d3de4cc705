// A real godwit process boots each probe image: the three raw-image entry
// modes, the testdev page, guest-requested exits, reset, and faults that must
// stop the VM with a report instead of hanging.
#include <gtest/gtest.h>

#include "godwit_process.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

TEST(Boot, RealModeBootSectorPrintsAndExitsWithItsCode) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("hello_real")}, false);
  EXPECT_EQ(vm.wait_exit(30s), 7);
  EXPECT_EQ(vm.serial(), "hello from real mode\n");
}

TEST(Boot, ProtectedModeEntry) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("hello_protected") + ",load=0x100000,entry=0x100000,mode=protected"},
            false);
  EXPECT_EQ(vm.wait_exit(30s), 0x32);
  EXPECT_EQ(vm.serial(), "hello from protected mode\n");
}

TEST(Boot, LongModeEntryWithIdentityMapAboveOneGiB) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("hello_long") + ",load=0x100000,entry=0x100000,mode=long", "--memory",
             "2G"},
            false);
  EXPECT_EQ(vm.wait_exit(30s), 0x64);
  EXPECT_EQ(vm.serial(), "hello from long mode\n");
}

TEST(Boot, TestdevReportsPlatformFacts) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("testdev") + ",load=0x100000,entry=0x100000,mode=protected",
             "--vcpus", "3", "--memory", "256M"},
            false);
  EXPECT_EQ(vm.wait_exit(30s), 0x47);  // low byte of the magic "GDWT"
  EXPECT_EQ(vm.serial(), "vcpus=3 ram=256\n");
}

TEST(Boot, I8042ResetStopsTheVmCleanly) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("reset")}, false);
  EXPECT_EQ(vm.wait_exit(30s), 0);
  EXPECT_NE(vm.stderr_text().find("i8042"), std::string::npos) << vm.stderr_text();
}

TEST(Boot, GuestFaultStopsWithRegistersNeverHangs) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("triple_fault")}, false);
  auto status = vm.wait_exit(60s);
  ASSERT_TRUE(status) << "godwit hung after a guest fault";
  EXPECT_EQ(*status, 125);
  std::string err = vm.stderr_text();
  EXPECT_NE(err.find("rip="), std::string::npos) << err;
  EXPECT_NE(err.find("error"), std::string::npos) << err;
}

TEST(Boot, SigtermStopsARunningGuest) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("spin"), "--vcpus", "2"}, false);
  ASSERT_TRUE(vm.wait_serial(".", 30s));
  vm.process().signal(SIGTERM);
  EXPECT_EQ(vm.wait_exit(30s), 128 + SIGTERM);
}

}  // namespace
}  // namespace godwit::test
