// x86 RAM layout (low RAM, MMIO hole, high RAM) and the host-size helpers.
#include <gtest/gtest.h>

#include "memory/guest_memory.h"

namespace godwit {
namespace {

TEST(MemoryLayout, OneGibIsOneLowRegion) {
  auto layout = x86_memory_layout(1 * kGiB);
  ASSERT_EQ(layout.size(), 1u);
  EXPECT_EQ(layout[0].gpa, 0u);
  EXPECT_EQ(layout[0].size, 1 * kGiB);
}

TEST(MemoryLayout, ExactlyThreeGibFillsLowRamWithoutHighRegion) {
  auto layout = x86_memory_layout(3 * kGiB);
  ASSERT_EQ(layout.size(), 1u);
  EXPECT_EQ(layout[0].gpa, 0u);
  EXPECT_EQ(layout[0].size, 3 * kGiB);
}

TEST(MemoryLayout, FiveGibLeavesHoleAndPutsRestAboveFourGib) {
  auto layout = x86_memory_layout(5 * kGiB);
  ASSERT_EQ(layout.size(), 2u);
  EXPECT_EQ(layout[0].gpa, 0u);
  EXPECT_EQ(layout[0].size, 3 * kGiB);
  EXPECT_EQ(layout[1].gpa, 4 * kGiB);
  EXPECT_EQ(layout[1].size, 2 * kGiB);
}

TEST(MemoryLayout, ZeroIsEmpty) { EXPECT_TRUE(x86_memory_layout(0).empty()); }

TEST(HostMemory, ParsesMemTotalPlusSwap) {
  auto bytes = parse_host_memory_bytes(
      "MemTotal:       1024 kB\nMemFree:  10 kB\nSwapTotal:       2048 kB\n");
  ASSERT_TRUE(bytes) << bytes.error().message;
  EXPECT_EQ(*bytes, 3072u * 1024);
}

TEST(HostMemory, MissingMemTotalIsAnError) {
  auto bytes = parse_host_memory_bytes("SwapTotal: 5 kB\n");
  ASSERT_FALSE(bytes);
  EXPECT_NE(bytes.error().message.find("MemTotal"), std::string::npos);
}

TEST(HostMemory, FormatsSizesForMessages) {
  EXPECT_EQ(format_size(512 * kGiB), "512 GiB");
  EXPECT_EQ(format_size(3 * kGiB / 2), "1.5 GiB");
  EXPECT_EQ(format_size(64 * kMiB), "64 MiB");
  EXPECT_EQ(format_size(12345), "12345 bytes");
}

}  // namespace
}  // namespace godwit
