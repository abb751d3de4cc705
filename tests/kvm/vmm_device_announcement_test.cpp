// How a guest learns about its virtio devices, checked in guest memory after
// Machine::create: the device tree at 0xE0000 for every boot, and for Linux
// either a SETUP_DTB entry linked from the zero page or virtio_mmio.device=
// items on the command line (never both).
#include <gtest/gtest.h>
#include <libfdt.h>

#include <string>
#include <vector>

#include "debian_kernel.h"
#include "test_util.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/boot_params.h"
#include "vmm/fdt/fdt_layout.h"
#include "vmm/machine.h"

namespace godwit {
namespace {

VmConfig base_config() {
  VmConfig c;
  c.memory_size = 256 * kMiB;
  c.vcpus = 2;
  c.serial.kind = SerialConfig::Kind::none;
  c.rng = true;
  return c;
}

/// The device tree as the guest sees it at kFdtAddr (empty if no magic).
std::vector<uint8_t> guest_fdt(const GuestMemory& memory) {
  std::vector<uint8_t> header(40);
  if (!memory.read(fdt::kFdtAddr, header) || fdt_magic(header.data()) != FDT_MAGIC) return {};
  std::vector<uint8_t> blob(fdt_totalsize(header.data()));
  if (!memory.read(fdt::kFdtAddr, blob)) return {};
  return blob;
}

std::string guest_cstring(const GuestMemory& memory, uint64_t gpa) {
  std::string s;
  for (char c; (c = static_cast<char>(*memory.read_obj<uint8_t>(gpa + s.size()))) != 0;) s += c;
  return s;
}

/// Base address (reg) of the first virtio,mmio node, or 0.
uint64_t first_virtio_base(const std::vector<uint8_t>& blob) {
  int node = fdt_node_offset_by_compatible(blob.data(), -1, "virtio,mmio");
  if (node < 0) return 0;
  int len = 0;
  const auto* reg = static_cast<const fdt32_t*>(fdt_getprop(blob.data(), node, "reg", &len));
  if (!reg || len != 16) return 0;
  return (uint64_t{fdt32_to_cpu(reg[0])} << 32) | fdt32_to_cpu(reg[1]);
}

TEST(DeviceAnnouncement, RawImageGuestFindsTheTreeAtItsFixedAddress) {
  GODWIT_REQUIRE_KVM();
  VmConfig c = base_config();
  c.boot = ImageBoot{test::build_path("guests/selfcheck.img")};
  auto m = Machine::create(c);
  ASSERT_TRUE(m) << m.error().message;
  std::vector<uint8_t> blob = guest_fdt((*m)->memory());
  ASSERT_FALSE(blob.empty()) << "no FDT magic at 0xE0000";
  EXPECT_EQ(fdt_check_full(blob.data(), blob.size()), 0);
  EXPECT_EQ(first_virtio_base(blob), 0xd0001000u);
}

TEST(DeviceAnnouncement, LinuxGetsTheTreeAsSetupDtbByDefault) {
  GODWIT_REQUIRE_KVM();
  REQUIRE_DEBIAN_KERNEL(kernel);
  VmConfig c = base_config();
  c.boot = KernelBoot{kernel, "", "console=ttyS0"};
  auto m = Machine::create(c);
  ASSERT_TRUE(m) << m.error().message;
  const GuestMemory& mem = (*m)->memory();
  auto params = mem.read_obj<boot::BootParams>(boot::kZeroPageAddr);
  ASSERT_TRUE(params);
  ASSERT_EQ(params->hdr.setup_data, fdt::kSetupDtbEntryAddr);
  auto next = mem.read_obj<uint64_t>(fdt::kSetupDtbEntryAddr);
  auto type = mem.read_obj<uint32_t>(fdt::kSetupDtbEntryAddr + 8);
  auto len = mem.read_obj<uint32_t>(fdt::kSetupDtbEntryAddr + 12);
  EXPECT_EQ(*next, 0u);
  EXPECT_EQ(*type, 2u) << "SETUP_DTB";
  std::vector<uint8_t> blob = guest_fdt(mem);
  ASSERT_FALSE(blob.empty());
  EXPECT_EQ(*len, blob.size());
  EXPECT_EQ(first_virtio_base(blob), 0xd0001000u);
  std::string cmdline = guest_cstring(mem, params->hdr.cmd_line_ptr);
  EXPECT_EQ(cmdline, "console=ttyS0") << "devices must not be announced twice";
}

TEST(DeviceAnnouncement, LinuxGetsCommandLineItemsWhenAsked) {
  GODWIT_REQUIRE_KVM();
  REQUIRE_DEBIAN_KERNEL(kernel);
  VmConfig c = base_config();
  c.boot = KernelBoot{kernel, "", "console=ttyS0"};
  c.virtio_discovery = VirtioDiscovery::cmdline;
  auto m = Machine::create(c);
  ASSERT_TRUE(m) << m.error().message;
  const GuestMemory& mem = (*m)->memory();
  auto params = mem.read_obj<boot::BootParams>(boot::kZeroPageAddr);
  ASSERT_TRUE(params);
  EXPECT_EQ(params->hdr.setup_data, 0u) << "no SETUP_DTB in cmdline mode";
  EXPECT_EQ(guest_cstring(mem, params->hdr.cmd_line_ptr),
            "console=ttyS0 virtio_mmio.device=4K@0xd0001000:5");
}

}  // namespace
}  // namespace godwit
