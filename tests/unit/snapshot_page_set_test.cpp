// PageSet, the diff-snapshot input filled from both dirty sources: the KVM
// dirty log (ORed per slot) and the VMM-side DirtyBitmap (taken = cleared).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "snapshot/page_set.h"
#include "test_util.h"

namespace godwit::snapshot {
namespace {

using ::testing::HasSubstr;

const RegionSpec kTwoRegions[] = {{0, 3 * kGiB}, {kHighRamStart, 130 * kPageSize}};

TEST(SnapshotPageSet, AddRangeMarksEveryTouchedPageAcrossRegions) {
  PageSet set(kTwoRegions);
  EXPECT_EQ(set.count(), 0u);
  ASSERT_TRUE(set.add_range(kPageSize - 1, 2));  // straddles pages 0 and 1
  EXPECT_TRUE(set.contains(0));
  EXPECT_TRUE(set.contains(kPageSize));
  EXPECT_FALSE(set.contains(2 * kPageSize));
  ASSERT_TRUE(set.add_range(kHighRamStart + 129 * kPageSize, kPageSize));
  EXPECT_TRUE(set.contains(kHighRamStart + 129 * kPageSize + 7));
  EXPECT_EQ(set.count(), 3u);

  auto hole = set.add_range(3 * kGiB - kPageSize, 2 * kPageSize);  // runs into the MMIO hole
  ASSERT_FALSE(hole);
  EXPECT_THAT(hole.error().message, HasSubstr("byte at 0xc0000000 is outside guest RAM"));
  EXPECT_FALSE(set.contains(3 * kGiB - kPageSize)) << "a failed add must add nothing";
  EXPECT_FALSE(set.contains(3 * kGiB));
}

TEST(SnapshotPageSet, KvmDirtyLogIsOredPerSlotAndBitsPastTheSlotAreIgnored) {
  PageSet set(kTwoRegions);
  ASSERT_TRUE(set.add_range(kHighRamStart, kPageSize));                        // page 0 of slot 1
  std::vector<uint64_t> log = {uint64_t{1} << 5, ~uint64_t{0}, ~uint64_t{0}};  // 130 pages: 3 words
  ASSERT_TRUE(set.add_dirty_log(1, log));
  EXPECT_TRUE(set.contains(kHighRamStart));  // kept (OR, not overwrite)
  EXPECT_TRUE(set.contains(kHighRamStart + 5 * kPageSize));
  EXPECT_FALSE(set.contains(kHighRamStart + 6 * kPageSize));
  EXPECT_EQ(set.count(), 2u + 64 + 2);  // bits 128..129 of word 2 only
  EXPECT_EQ(set.words(1)[2], 3u);

  auto short_log = set.add_dirty_log(1, std::span(log).first(2));
  ASSERT_FALSE(short_log);
  EXPECT_THAT(short_log.error().message, HasSubstr("has 2 words, the slot needs 3"));
  EXPECT_FALSE(set.add_dirty_log(2, log));
}

TEST(SnapshotPageSet, VmmDirtyBitsAreTakenAndClearedAtomically) {
  auto memory = test::make_guest_memory(4 * kMiB);
  ASSERT_TRUE(memory);
  const uint8_t byte = 1;
  ASSERT_TRUE(memory->write(3 * kPageSize, std::span(&byte, 1)));
  ASSERT_TRUE(memory->write(4 * kMiB - 1, std::span(&byte, 1)));
  PageSet set = PageSet::for_memory(*memory);
  std::vector<uint64_t> kvm_log((4 * kMiB / kPageSize) / 64, 0);
  kvm_log[0] = 1;  // page 0 written by the guest
  ASSERT_TRUE(set.add_dirty_log(0, kvm_log));
  ASSERT_TRUE(set.take_vmm_dirty(*memory));
  EXPECT_TRUE(set.contains(0));
  EXPECT_TRUE(set.contains(3 * kPageSize));
  EXPECT_TRUE(set.contains(4 * kMiB - kPageSize));
  EXPECT_EQ(set.count(), 3u);
  EXPECT_EQ(memory->vmm_dirty(0).count(), 0u) << "taking must clear the VMM bitmap";

  DirtyBitmap wrong(7);
  EXPECT_FALSE(set.take_vmm_dirty(0, wrong));
  PageSet other(kTwoRegions);
  EXPECT_FALSE(other.take_vmm_dirty(*memory));
  EXPECT_FALSE(set.add_set(other));
}

TEST(SnapshotPageSet, AddAllClearAndAddSet) {
  PageSet set(kTwoRegions);
  set.add_all();
  EXPECT_EQ(set.count(), 3 * kGiB / kPageSize + 130);
  PageSet copy(kTwoRegions);
  ASSERT_TRUE(copy.add_set(set));
  EXPECT_EQ(copy.count(), set.count());
  set.clear();
  EXPECT_EQ(set.count(), 0u);
  EXPECT_FALSE(set.contains(0));
}

}  // namespace
}  // namespace godwit::snapshot
