// MachineDescription: filling it from the memory layout, assigning virtio-mmio
// slots and IRQs, and refusing inconsistent descriptions with a clear reason.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "vmm/fdt/machine_description.h"
#include "vmm/platform.h"

namespace godwit::fdt {
namespace {

MachineDescription small_machine() {
  std::vector<RegionSpec> layout = x86_memory_layout(64 * kMiB);
  return describe_machine(layout, 2);
}

/// The validation error message, or "" when the description is valid.
std::string validation_error(const MachineDescription& m) {
  auto r = validate(m);
  return r ? std::string() : r.error().message;
}

TEST(FdtDescription, DescribesTheLayoutAndPlatformDefaults) {
  std::vector<RegionSpec> layout = x86_memory_layout(5 * kGiB);
  MachineDescription m = describe_machine(layout, 4);
  ASSERT_EQ(m.memory.size(), 2u);
  EXPECT_EQ(m.memory[0].gpa, 0u);
  EXPECT_EQ(m.memory[0].size, 3 * kGiB);
  EXPECT_EQ(m.memory[1].gpa, 4 * kGiB);
  EXPECT_EQ(m.memory[1].size, 2 * kGiB);
  EXPECT_EQ(m.vcpus, 4u);
  EXPECT_EQ(m.uart.port, 0x3f8);
  EXPECT_EQ(m.uart.irq, 4u);
  EXPECT_EQ(m.testdev_base, 0xd0000000u);
  EXPECT_EQ(m.ioapic_base, 0xfec00000u);
  EXPECT_TRUE(m.virtio_devices.empty());
  EXPECT_EQ(validation_error(m), "");
}

TEST(FdtDescription, DescribesMappedGuestMemory) {
  auto memory = GuestMemory::create({.size = 16 * kMiB});
  ASSERT_TRUE(memory) << memory.error().message;
  MachineDescription m = describe_machine(**memory, 1);
  ASSERT_EQ(m.memory.size(), 1u);
  EXPECT_EQ(m.memory[0].gpa, 0u);
  EXPECT_EQ(m.memory[0].size, 16 * kMiB);
}

TEST(FdtDescription, VirtioDevicesTakeConsecutivePagesAndIrqs) {
  MachineDescription m = small_machine();
  auto block = add_virtio_mmio_device(m, "block");
  auto net = add_virtio_mmio_device(m, "net");
  ASSERT_TRUE(block && net);
  EXPECT_EQ(block->base, platform::kVirtioMmioBase);
  EXPECT_EQ(block->size, 0x1000u);
  EXPECT_EQ(block->irq, 5u);
  EXPECT_EQ(block->type, "block");
  EXPECT_EQ(net->base, platform::kVirtioMmioBase + 0x1000);
  EXPECT_EQ(net->irq, 6u);
  ASSERT_EQ(m.virtio_devices.size(), 2u);
  EXPECT_EQ(m.virtio_devices[1].type, "net");
  EXPECT_EQ(validation_error(m), "");
}

TEST(FdtDescription, RunningOutOfIoapicPinsFails) {
  MachineDescription m = small_machine();
  for (uint32_t irq = kFirstVirtioIrq; irq < kIoapicPins; ++irq)
    ASSERT_TRUE(add_virtio_mmio_device(m, "rng"));
  EXPECT_EQ(m.virtio_devices.back().irq, 23u);
  EXPECT_EQ(validation_error(m), "");
  auto extra = add_virtio_mmio_device(m, "net");
  ASSERT_FALSE(extra);
  EXPECT_NE(extra.error().message.find("IOAPIC pins"), std::string::npos) << extra.error().message;
  EXPECT_EQ(m.virtio_devices.size(), kIoapicPins - kFirstVirtioIrq);
}

TEST(FdtDescription, RejectsBadVcpuCounts) {
  MachineDescription m = small_machine();
  m.vcpus = 0;
  EXPECT_NE(validation_error(m).find("0 vCPUs"), std::string::npos);
  m.vcpus = kMaxVcpus + 1;
  EXPECT_NE(validation_error(m).find("255 vCPUs"), std::string::npos);
  m.vcpus = kMaxVcpus;
  EXPECT_EQ(validation_error(m), "");
}

TEST(FdtDescription, RejectsMissingOrOverlappingRam) {
  MachineDescription m = small_machine();
  m.memory.clear();
  EXPECT_NE(validation_error(m).find("no RAM"), std::string::npos);
  m.memory = {{0, 64 * kMiB}, {32 * kMiB, 64 * kMiB}};
  EXPECT_NE(validation_error(m).find("overlaps"), std::string::npos) << validation_error(m);
  m.memory = {{0, 0}};
  EXPECT_NE(validation_error(m).find("empty"), std::string::npos) << validation_error(m);
}

TEST(FdtDescription, RejectsDevicesOverlappingRamOrEachOther) {
  MachineDescription m = small_machine();
  m.virtio_devices.push_back({.base = 0x100000, .size = 0x1000, .irq = 5, .type = "block"});
  std::string error = validation_error(m);
  EXPECT_NE(error.find("virtio-mmio block [0x100000, 0x101000) overlaps RAM"), std::string::npos)
      << error;

  m = small_machine();
  m.virtio_devices.push_back({.base = 0xd0000000, .size = 0x1000, .irq = 5, .type = "net"});
  error = validation_error(m);
  EXPECT_NE(error.find("overlaps testdev page"), std::string::npos) << error;
}

TEST(FdtDescription, RejectsUnalignedDeviceWindows) {
  MachineDescription m = small_machine();
  m.virtio_devices.push_back({.base = 0xd0001800, .size = 0x1000, .irq = 5, .type = "rng"});
  EXPECT_NE(validation_error(m).find("not page-aligned"), std::string::npos);
}

TEST(FdtDescription, RejectsSharedOrNonexistentIrqs) {
  MachineDescription m = small_machine();
  m.virtio_devices.push_back({.base = 0xd0001000, .size = 0x1000, .irq = 4, .type = "block"});
  std::string error = validation_error(m);
  EXPECT_NE(error.find("virtio-mmio block at 0xd0001000 IRQ 4 is already taken"), std::string::npos)
      << error;

  m.virtio_devices.back().irq = 24;
  error = validation_error(m);
  EXPECT_NE(error.find("IRQ 24 is not an IOAPIC pin"), std::string::npos) << error;
}

}  // namespace
}  // namespace godwit::fdt
