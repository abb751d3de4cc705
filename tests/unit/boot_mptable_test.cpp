// Intel MP table: checksums, one processor entry per vCPU, bus, IOAPIC and
// the ISA interrupt entries.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "memory/guest_memory.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/mptable.h"

namespace godwit::boot {
namespace {

uint8_t byte_sum(const uint8_t* p, size_t n) {
  return static_cast<uint8_t>(std::accumulate(p, p + n, 0u));
}
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return le16(p) | uint32_t{le16(p + 2)} << 16; }

// The parsed configuration table entries (kind -> count) and checks on the way.
struct ParsedTable {
  std::vector<uint8_t> cpu_apic_ids;
  std::vector<uint8_t> cpu_flags;
  int buses = 0;
  int ioapics = 0;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_address = 0;
  std::vector<std::pair<uint8_t, uint8_t>> io_interrupts;  // (ISA IRQ, IOAPIC pin)
  int local_interrupts = 0;
};

ParsedTable parse(const std::vector<uint8_t>& bytes, uint64_t base) {
  ParsedTable t;
  EXPECT_EQ(std::memcmp(bytes.data(), "_MP_", 4), 0);
  EXPECT_EQ(byte_sum(bytes.data(), 16), 0) << "floating pointer checksum";
  EXPECT_EQ(bytes[8], 1);  // length in paragraphs
  EXPECT_EQ(bytes[9], 4);  // spec 1.4
  uint64_t config = le32(bytes.data() + 4) - base;
  const uint8_t* h = bytes.data() + config;
  EXPECT_EQ(std::memcmp(h, "PCMP", 4), 0);
  uint16_t length = le16(h + 4);
  EXPECT_LE(config + length, bytes.size());
  EXPECT_EQ(byte_sum(h, length), 0) << "configuration table checksum";
  EXPECT_EQ(le32(h + 36), 0xfee00000u);
  uint16_t count = le16(h + 34);
  const uint8_t* e = h + 44;
  for (uint16_t i = 0; i < count; ++i) {
    switch (e[0]) {
      case 0:
        t.cpu_apic_ids.push_back(e[1]);
        t.cpu_flags.push_back(e[3]);
        e += 20;
        break;
      case 1:
        EXPECT_EQ(std::memcmp(e + 2, "ISA   ", 6), 0);
        ++t.buses;
        e += 8;
        break;
      case 2:
        ++t.ioapics;
        t.ioapic_id = e[1];
        t.ioapic_address = le32(e + 4);
        e += 8;
        break;
      case 3:
        EXPECT_EQ(e[6], t.ioapic_id);
        t.io_interrupts.push_back({e[5], e[7]});
        e += 8;
        break;
      case 4:
        ++t.local_interrupts;
        e += 8;
        break;
      default:
        ADD_FAILURE() << "unknown entry type " << int{e[0]};
        return t;
    }
  }
  EXPECT_EQ(e, h + length) << "entries fill exactly the declared length";
  return t;
}

TEST(MpTable, DescribesEveryVcpuTheIoapicAndIsaIrqs) {
  for (unsigned vcpus : {1u, 2u, 4u, 64u}) {
    auto bytes = build_mp_table(kMpTableAddr, vcpus);
    ASSERT_TRUE(bytes) << bytes.error().message;
    ParsedTable t = parse(*bytes, kMpTableAddr);
    ASSERT_EQ(t.cpu_apic_ids.size(), vcpus);
    for (unsigned i = 0; i < vcpus; ++i) {
      EXPECT_EQ(t.cpu_apic_ids[i], i);
      EXPECT_EQ(t.cpu_flags[i], i == 0 ? 3 : 1) << "enabled, BSP only for vCPU 0";
    }
    EXPECT_EQ(t.buses, 1);
    EXPECT_EQ(t.ioapics, 1);
    EXPECT_EQ(t.ioapic_id, vcpus);
    EXPECT_EQ(t.ioapic_address, 0xfec00000u);
    ASSERT_EQ(t.io_interrupts.size(), 24u) << "every IOAPIC pin, so virtio GSIs 16-23 work too";
    for (uint8_t irq = 0; irq < 24; ++irq)
      EXPECT_EQ(t.io_interrupts[irq], std::make_pair(irq, irq));
    EXPECT_EQ(t.local_interrupts, 2);
  }
}

TEST(MpTable, WrittenIntoTheReservedBiosArea) {
  auto memory = GuestMemory::create(
      {.size = 16 * kMiB, .backing = MemoryBacking::anonymous, .hugetlbfs_dir = {}});
  ASSERT_TRUE(memory);
  ASSERT_TRUE(write_mp_table(**memory, 3));
  std::vector<uint8_t> bytes(kMpTableEnd - kMpTableAddr);
  ASSERT_TRUE((*memory)->read(kMpTableAddr, bytes));
  EXPECT_EQ(parse(bytes, kMpTableAddr).cpu_apic_ids.size(), 3u);
}

TEST(MpTable, RejectsVcpuCountsItCannotDescribe) {
  EXPECT_FALSE(build_mp_table(kMpTableAddr, 0));
  EXPECT_FALSE(build_mp_table(kMpTableAddr, 255));
  EXPECT_TRUE(build_mp_table(kMpTableAddr, 254));
}

}  // namespace
}  // namespace godwit::boot
