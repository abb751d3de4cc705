// Delivering the DTB: write_fdt() into guest memory at the fixed address
// (bounds, alignment, validity), where that address sits in the boot layout,
// and the Linux SETUP_DTB setup_data entry.
#include "vmm/fdt/fdt_delivery.h"

#include <gtest/gtest.h>
#include <libfdt.h>

#include <cstring>
#include <vector>

#include "memory/guest_memory.h"
#include "test_util.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/e820.h"
#include "vmm/fdt/fdt_builder.h"
#include "vmm/fdt/fdt_layout.h"
#include "vmm/fdt/machine_description.h"

namespace godwit::fdt {
namespace {

std::vector<uint8_t> machine_blob(const GuestMemory& memory, const std::string& bootargs = "") {
  MachineDescription m = describe_machine(memory, 2);
  EXPECT_TRUE(add_virtio_mmio_device(m, "block"));
  m.bootargs = bootargs;
  auto blob = build_fdt(m);
  EXPECT_TRUE(blob) << blob.error().message;
  return blob ? *blob : std::vector<uint8_t>{};
}

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}
uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }

TEST(FdtDelivery, WritesTheBlobAtTheFixedAddressAndMarksItDirty) {
  auto memory = test::make_guest_memory(16 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(memory);
  std::vector<uint8_t> blob = machine_blob(*memory);
  ASSERT_FALSE(blob.empty());
  memory->vmm_dirty(0).clear();
  auto written = write_fdt(*memory, kFdtAddr, blob);
  ASSERT_TRUE(written) << written.error().message;

  std::vector<uint8_t> back(blob.size());
  ASSERT_TRUE(memory->read(kFdtAddr, back));
  EXPECT_EQ(back, blob);
  EXPECT_EQ(fdt_check_header(back.data()), 0);
  EXPECT_GE(fdt_path_offset(back.data(), "/virtio_mmio@d0001000"), 0);
  EXPECT_TRUE(memory->vmm_dirty(0).test(kFdtAddr / kPageSize));
  EXPECT_TRUE(memory->vmm_dirty(0).test((kFdtAddr + blob.size() - 1) / kPageSize));
}

TEST(FdtDelivery, BlobLargerThanTheReservedAreaFails) {
  auto memory = test::make_guest_memory(16 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(memory);
  std::vector<uint8_t> blob = machine_blob(*memory, std::string(kFdtMaxSize, 'x'));
  ASSERT_GT(blob.size(), kFdtMaxSize);
  auto written = write_fdt(*memory, kFdtAddr, blob);
  ASSERT_FALSE(written);
  const std::string& message = written.error().message;
  EXPECT_NE(message.find("writing the FDT (" + std::to_string(blob.size()) + " bytes) at 0xe0000"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("larger than the 65536 bytes reserved"), std::string::npos) << message;
  // Nothing was written.
  EXPECT_EQ(memory->read_obj<uint32_t>(kFdtAddr).value(), 0u);
}

TEST(FdtDelivery, BlobFillingTheReservedAreaFits) {
  auto memory = test::make_guest_memory(16 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(memory);
  // Grow the bootargs until the blob is as large as fits (properties are
  // padded to 4 bytes, so "as large as fits" is within 4 bytes of the limit).
  size_t length = kFdtMaxSize - machine_blob(*memory, "x").size();
  std::vector<uint8_t> blob = machine_blob(*memory, std::string(length, 'x'));
  while (blob.size() > kFdtMaxSize) blob = machine_blob(*memory, std::string(--length, 'x'));
  ASSERT_GT(blob.size(), kFdtMaxSize - 4);
  auto written = write_fdt(*memory, kFdtAddr, blob);
  EXPECT_TRUE(written) << written.error().message;
  EXPECT_EQ(memory->read_obj<uint32_t>(kFdtAddr).value(), cpu_to_fdt32(FDT_MAGIC));
}

TEST(FdtDelivery, RejectsUnalignedAddressesGarbageAndRangesOutsideRam) {
  auto memory = test::make_guest_memory(16 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(memory);
  std::vector<uint8_t> blob = machine_blob(*memory);

  auto unaligned = write_fdt(*memory, kFdtAddr + 4, blob);
  ASSERT_FALSE(unaligned);
  EXPECT_NE(unaligned.error().message.find("not 8-byte aligned"), std::string::npos);

  std::vector<uint8_t> garbage(256, 0xab);
  auto bad = write_fdt(*memory, kFdtAddr, garbage);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad header"), std::string::npos) << bad.error().message;

  std::vector<uint8_t> truncated(blob.begin(), blob.end() - 8);
  auto short_blob = write_fdt(*memory, kFdtAddr, truncated);
  ASSERT_FALSE(short_blob);
  EXPECT_NE(short_blob.error().message.find("totalsize"), std::string::npos)
      << short_blob.error().message;

  auto outside = write_fdt(*memory, 16 * kMiB - 8, blob);
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().message.find("at 0xfffff8"), std::string::npos)
      << outside.error().message;
}

TEST(FdtDelivery, FixedAreaIsReservedRamClearOfTheBootStructures) {
  // [kFdtAddr, kFdtAddr + kFdtMaxSize) must not overlap what the loaders
  // write (vmm/boot/boot_layout.h) nor the test guests' per-vCPU blocks
  // ([0x20000, 0xa0000), tests/guests/layout.inc), and the e820 map must
  // report it reserved so a kernel never hands it out.
  constexpr uint64_t end = kFdtAddr + kFdtMaxSize;
  EXPECT_LE(end, boot::kMpTableAddr);
  EXPECT_GE(kFdtAddr, boot::kCmdlineAddr + boot::kCmdlineCapacity);
  EXPECT_GE(kFdtAddr, boot::kEbdaStart);
  EXPECT_GE(kFdtAddr, 0xa0000u);
  EXPECT_LE(end, boot::kKernelLoadAddr);
  EXPECT_EQ(kFdtAddr % 8, 0u);
  EXPECT_EQ(kSetupDtbEntryAddr + sizeof(SetupDataHeader), kFdtAddr);
  EXPECT_GE(kSetupDtbEntryAddr, boot::kEbdaStart);

  auto memory = test::make_guest_memory(16 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(memory);
  bool reserved = false;
  for (const boot::E820Range& range : boot::e820_map(*memory))
    if (range.addr <= kFdtAddr && end <= range.addr + range.size)
      reserved = range.type == boot::kE820Reserved;
  EXPECT_TRUE(reserved);
}

TEST(FdtDelivery, SetupDtbEntryLayout) {
  auto memory = test::make_guest_memory(16 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(memory);
  std::vector<uint8_t> dtb = machine_blob(*memory);
  auto entry = setup_dtb_entry(dtb, 0x123456789a);
  ASSERT_TRUE(entry) << entry.error().message;
  ASSERT_EQ(entry->size(), 16 + dtb.size());
  EXPECT_EQ(le64(entry->data()), 0x123456789au);    // next
  EXPECT_EQ(le32(entry->data() + 8), 2u);           // type = SETUP_DTB
  EXPECT_EQ(le32(entry->data() + 12), dtb.size());  // len
  EXPECT_EQ(std::vector<uint8_t>(entry->begin() + 16, entry->end()), dtb);
  // Linux reads the DTB at setup_data + offsetof(struct setup_data, data).
  EXPECT_EQ(fdt_check_header(entry->data() + 16), 0);

  auto last = setup_dtb_entry(dtb);
  ASSERT_TRUE(last);
  EXPECT_EQ(le64(last->data()), 0u);
}

TEST(FdtDelivery, SetupDtbEntryRefusesSomethingThatIsNotADtb) {
  std::vector<uint8_t> garbage(64, 0);
  auto entry = setup_dtb_entry(garbage);
  ASSERT_FALSE(entry);
  EXPECT_NE(entry.error().message.find("building the SETUP_DTB entry"), std::string::npos);
}

}  // namespace
}  // namespace godwit::fdt
