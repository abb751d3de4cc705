// KVM_RUN exits decoded into VcpuExit by tiny real-mode guests: port I/O in
// both directions, MMIO write and read, hlt, and describe() for logs.
#include <gtest/gtest.h>

#include <variant>

#include "kvm/exit.h"
#include "kvm_test_guest.h"
#include "test_util.h"

namespace godwit::test {
namespace {

using kvm::VcpuExit;

// Runs once and returns the exit, failing the test on an ioctl error.
VcpuExit run_once(kvm::Vcpu& vcpu) {
  auto exit = vcpu.run();
  EXPECT_TRUE(exit.has_value()) << exit.error().message;
  return exit ? std::move(*exit) : VcpuExit{kvm::Unknown{~0u}};
}

TEST(KvmExit, OutReportsPortSizeAndData) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  const uint8_t code[] = {
      0xB0, 0x42,  // mov al, 0x42
      0xE6, 0x10,  // out 0x10, al
      0xF4,        // hlt
  };
  memory.load(code);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;

  VcpuExit exit = run_once(*guest->vcpu);
  auto* out = std::get_if<kvm::IoOut>(&exit);
  ASSERT_NE(out, nullptr) << kvm::describe(exit);
  EXPECT_EQ(out->port, 0x10);
  EXPECT_EQ(out->size, 1);
  EXPECT_EQ(out->count, 1u);
  ASSERT_EQ(out->data.size(), 1u);
  EXPECT_EQ(out->data[0], 0x42);
  EXPECT_EQ(kvm::describe(exit), "io out port 0x10 size 1 count 1 data 42");

  exit = run_once(*guest->vcpu);
  EXPECT_TRUE(std::holds_alternative<kvm::Hlt>(exit)) << kvm::describe(exit);
}

TEST(KvmExit, InDataFilledByTheVmmReachesTheGuest) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  const uint8_t code[] = {
      0xE4, 0x20,  // in al, 0x20
      0xE6, 0x21,  // out 0x21, al
      0xF4,        // hlt
  };
  memory.load(code);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;

  VcpuExit exit = run_once(*guest->vcpu);
  auto* in = std::get_if<kvm::IoIn>(&exit);
  ASSERT_NE(in, nullptr) << kvm::describe(exit);
  EXPECT_EQ(in->port, 0x20);
  ASSERT_EQ(in->data.size(), 1u);
  in->data[0] = 0x5A;

  exit = run_once(*guest->vcpu);
  auto* out = std::get_if<kvm::IoOut>(&exit);
  ASSERT_NE(out, nullptr) << kvm::describe(exit);
  EXPECT_EQ(out->port, 0x21);
  EXPECT_EQ(out->data[0], 0x5A);
}

TEST(KvmExit, MmioWriteAndReadOfUnbackedMemory) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  const uint8_t code[] = {
      0xC7, 0x06, 0x00, 0xE0, 0x34, 0x12,  // mov word [0xE000], 0x1234
      0xA1, 0x04, 0xE0,                    // mov ax, [0xE004]
      0xE7, 0x10,                          // out 0x10, ax
      0xF4,                                // hlt
  };
  memory.load(code);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;

  VcpuExit exit = run_once(*guest->vcpu);
  auto* write = std::get_if<kvm::MmioWrite>(&exit);
  ASSERT_NE(write, nullptr) << kvm::describe(exit);
  EXPECT_EQ(write->addr, kMmioAddr);
  ASSERT_EQ(write->data.size(), 2u);
  EXPECT_EQ(write->data[0], 0x34);
  EXPECT_EQ(write->data[1], 0x12);

  exit = run_once(*guest->vcpu);
  auto* read = std::get_if<kvm::MmioRead>(&exit);
  ASSERT_NE(read, nullptr) << kvm::describe(exit);
  EXPECT_EQ(read->addr, kMmioAddr + 4);
  ASSERT_EQ(read->data.size(), 2u);
  read->data[0] = 0xCD;
  read->data[1] = 0xAB;

  exit = run_once(*guest->vcpu);
  auto* out = std::get_if<kvm::IoOut>(&exit);
  ASSERT_NE(out, nullptr) << kvm::describe(exit);
  EXPECT_EQ(out->size, 2);
  ASSERT_EQ(out->data.size(), 2u);
  EXPECT_EQ(out->data[0], 0xCD);
  EXPECT_EQ(out->data[1], 0xAB);
}

TEST(KvmExit, HltWithoutIrqchipExits) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  const uint8_t code[] = {0xF4};  // hlt
  memory.load(code);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;

  VcpuExit exit = run_once(*guest->vcpu);
  EXPECT_TRUE(std::holds_alternative<kvm::Hlt>(exit)) << kvm::describe(exit);
  EXPECT_EQ(kvm::describe(exit), "hlt");
}

TEST(KvmExit, DescribeNamesUnknownReasons) {
  EXPECT_EQ(kvm::describe(VcpuExit{kvm::Unknown{77}}), "unknown exit reason 77");
  EXPECT_EQ(kvm::describe(VcpuExit{kvm::InternalError{1, {2, 3}}}),
            "internal error suberror 1 0x2 0x3");
}

}  // namespace
}  // namespace godwit::test
