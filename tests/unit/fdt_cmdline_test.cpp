// virtio_mmio_cmdline(): the Linux "virtio_mmio.device=SIZE@ADDR:IRQ"
// announcements come from the same description as the device tree.
#include <gtest/gtest.h>

#include <vector>

#include "memory/guest_memory.h"
#include "vmm/fdt/machine_description.h"
#include "vmm/fdt/virtio_cmdline.h"

namespace godwit::fdt {
namespace {

MachineDescription machine_with(int devices) {
  std::vector<RegionSpec> layout = x86_memory_layout(256 * kMiB);
  MachineDescription m = describe_machine(layout, 1);
  const char* types[] = {"block", "net", "rng"};
  for (int i = 0; i < devices; ++i) EXPECT_TRUE(add_virtio_mmio_device(m, types[i % 3]));
  return m;
}

TEST(FdtCmdline, NoDevicesNoAnnouncement) { EXPECT_EQ(virtio_mmio_cmdline(machine_with(0)), ""); }

TEST(FdtCmdline, OneDevice) {
  EXPECT_EQ(virtio_mmio_cmdline(machine_with(1)), "virtio_mmio.device=4K@0xd0001000:5");
}

TEST(FdtCmdline, ThreeDevicesInOrder) {
  EXPECT_EQ(virtio_mmio_cmdline(machine_with(3)),
            "virtio_mmio.device=4K@0xd0001000:5 virtio_mmio.device=4K@0xd0002000:6 "
            "virtio_mmio.device=4K@0xd0003000:7");
}

TEST(FdtCmdline, FollowsHandEditedDevices) {
  MachineDescription m = machine_with(0);
  m.virtio_devices.push_back({.base = 0xd0010000, .size = 0x200000, .irq = 17, .type = "net"});
  EXPECT_EQ(virtio_mmio_cmdline(m), "virtio_mmio.device=2M@0xd0010000:17");
}

TEST(FdtCmdline, SizesAsMemparseReadsThem) {
  EXPECT_EQ(linux_size_text(0x1000), "4K");
  EXPECT_EQ(linux_size_text(0x1800), "6K");
  EXPECT_EQ(linux_size_text(kMiB), "1M");
  EXPECT_EQ(linux_size_text(3 * kGiB), "3G");
  EXPECT_EQ(linux_size_text(1536), "1536");
  EXPECT_EQ(linux_size_text(0), "0");
}

TEST(FdtCmdline, AppendsToAnExistingCommandLine) {
  EXPECT_EQ(append_virtio_mmio_cmdline("console=ttyS0", machine_with(1)),
            "console=ttyS0 virtio_mmio.device=4K@0xd0001000:5");
  EXPECT_EQ(append_virtio_mmio_cmdline("", machine_with(1)), "virtio_mmio.device=4K@0xd0001000:5");
  EXPECT_EQ(append_virtio_mmio_cmdline("console=ttyS0", machine_with(0)), "console=ttyS0");
}

}  // namespace
}  // namespace godwit::fdt
