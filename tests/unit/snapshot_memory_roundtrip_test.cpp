// Guest-memory snapshots end to end: full round trips (sparse on disk, both
// backings, a > 3 GiB two-region layout), base + 2 diffs equal to a full
// snapshot taken at the same moment, and merges equal to loading the chain
// (issue 4 items 4 and 5, acceptance "diff chain ... byte-compare").
#include <gtest/gtest.h>

#include "snapshot/memory_file.h"
#include "snapshot/memory_load.h"
#include "snapshot/memory_merge.h"
#include "snapshot/memory_writer.h"
#include "snapshot_test_support.h"

namespace godwit::snapshot {
namespace {

using test::fill_page;
using test::memory_equal;
using test::zero_page;

constexpr WriteOptions kFast{.hash_threads = 2, .sync = false};

std::vector<uint64_t> scattered_pages(uint64_t base, uint64_t size, uint64_t step) {
  std::vector<uint64_t> pages;
  for (uint64_t gpa = base; gpa < base + size; gpa += step) pages.push_back(gpa);
  return pages;
}

TEST(SnapshotMemoryRoundTrip, FullSnapshotRestoresEveryByteIntoADirtyDestination) {
  for (MemoryBacking backing : {MemoryBacking::anonymous, MemoryBacking::memfd}) {
    SCOPED_TRACE(backing == MemoryBacking::memfd ? "memfd" : "anonymous");
    test::ScratchDir dir("full");
    auto source = test::make_guest_memory(64 * kMiB, backing);
    auto dest = test::make_guest_memory(64 * kMiB, backing);
    ASSERT_TRUE(source && dest);
    // Whole dense chunk, sparse pages, first and last page of RAM.
    for (uint64_t gpa = 2 * kMiB; gpa < 4 * kMiB; gpa += kPageSize) fill_page(*source, gpa, 1);
    for (uint64_t gpa : scattered_pages(8 * kMiB, 32 * kMiB, 37 * kPageSize))
      fill_page(*source, gpa, 2);
    fill_page(*source, 0, 3);
    fill_page(*source, 64 * kMiB - kPageSize, 4);
    // The destination starts with garbage everywhere: zero pages must be cleared.
    test::fill_all(*dest, 0xA5);

    auto written = write_full_memory(*source, dir.file("mem"), kFast);
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(written->kind, MemoryFileKind::full);
    EXPECT_EQ(written->covered_pages, 64 * kMiB / kPageSize);
    const std::string chain[] = {dir.file("mem")};
    auto loaded = load_memory(chain, *dest);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->data_pages, written->data_pages);
    EXPECT_EQ(loaded->data_pages + loaded->zero_pages, 64 * kMiB / kPageSize);
    EXPECT_TRUE(memory_equal(*source, *dest));
  }
}

TEST(SnapshotMemoryRoundTrip, ZeroPagesAreNotWrittenSoAMostlyEmptyGuestIsSmallOnDisk) {
  test::ScratchDir dir("sparse");
  auto source = test::make_guest_memory(1 * kGiB);
  ASSERT_TRUE(source);
  for (int i = 0; i < 10; ++i) fill_page(*source, (uint64_t(i) * 97 + 5) * kMiB, i);
  auto written = write_full_memory(*source, dir.file("mem"), kFast);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(written->data_pages, 10u);
  // 4 KiB header block + 10 data pages + one 160-byte index entry per 2 MiB.
  uint64_t expected = 4096 + 10 * kPageSize + 512 * 160;
  EXPECT_EQ(written->file_bytes, expected);
  EXPECT_EQ(test::file_size(dir.file("mem")), expected);
  EXPECT_LT(test::allocated_bytes(dir.file("mem")), 256 * 1024u);

  auto dest = test::make_guest_memory(1 * kGiB);
  ASSERT_TRUE(dest);
  const std::string chain[] = {dir.file("mem")};
  auto loaded = load_memory(chain, *dest);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->data_pages, 10u);
  EXPECT_TRUE(memory_equal(*source, *dest));
}

TEST(SnapshotMemoryRoundTrip, WritingDoesNotAllocateMemfdPagesTheGuestNeverTouched) {
  test::ScratchDir dir("no-populate");
  auto source = test::make_guest_memory(256 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(source);
  for (uint64_t gpa : {uint64_t{0}, 100 * kMiB, 255 * kMiB}) fill_page(*source, gpa, 5);
  auto allocated = [&] {
    struct stat st {};
    EXPECT_EQ(::fstat(source->regions()[0].fd, &st), 0);
    return uint64_t(st.st_blocks) * 512;
  };
  uint64_t before = allocated();
  EXPECT_EQ(before, 3 * kPageSize);
  auto written = write_full_memory(*source, dir.file("mem"), kFast);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(written->data_pages, 3u);
  EXPECT_EQ(allocated(), before) << "scanning for zero pages faulted in untouched memfd pages";
}

TEST(SnapshotMemoryRoundTrip, LayoutAbove3GiBWithTwoRegionsRoundTrips) {
  test::ScratchDir dir("high");
  uint64_t size = 3 * kGiB + 64 * kMiB;  // [0, 3 GiB) + [4 GiB, 4 GiB + 64 MiB)
  auto source = test::make_guest_memory(size);
  auto dest = test::make_guest_memory(size);
  ASSERT_TRUE(source && dest);
  ASSERT_EQ(source->regions().size(), 2u);
  std::vector<uint64_t> touched = {0,
                                   kLowRamEnd - kPageSize,
                                   kHighRamStart,
                                   kHighRamStart + 33 * kMiB + 5 * kPageSize,
                                   kHighRamStart + 64 * kMiB - kPageSize,
                                   1 * kGiB + 12345 * kPageSize};
  for (size_t i = 0; i < touched.size(); ++i) fill_page(*source, touched[i], uint32_t(i));
  fill_page(*dest, kHighRamStart + kPageSize, 99);  // must become zero

  auto written = write_full_memory(*source, dir.file("mem"), kFast);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(written->data_pages, touched.size());
  EXPECT_LT(written->file_bytes, 1 * kMiB);
  const std::string chain[] = {dir.file("mem")};
  auto loaded = load_memory(chain, *dest);
  ASSERT_TRUE(loaded) << loaded.error().message;
  for (uint64_t gpa : touched) {
    std::vector<uint8_t> a(kPageSize), b(kPageSize);
    ASSERT_TRUE(source->read(gpa, a));
    ASSERT_TRUE(dest->read(gpa, b));
    EXPECT_EQ(a, b) << "gpa 0x" << std::hex << gpa;
  }
  EXPECT_EQ(*dest->read_obj<uint64_t>(kHighRamStart + kPageSize), 0u);
  EXPECT_TRUE(memory_equal(*source, *dest));
}

// The source changes in three steps; after each a snapshot is written (full,
// diff, diff), and at the end also a full one. Both must load to the same
// bytes, and so must the merged chain.
class SnapshotDiffChain : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = test::make_guest_memory(32 * kMiB, MemoryBacking::memfd);
    ASSERT_TRUE(source_);
    for (uint64_t gpa = 0; gpa < 32 * kMiB; gpa += 3 * kPageSize) fill_page(*source_, gpa, 0);
    auto base = write_full_memory(*source_, dir_.file("base"), kFast);
    ASSERT_TRUE(base) << base.error().message;
    base_id_ = base->id;

    // Step 1: rewrite pages, zero some that had data, write some never touched.
    PageSet step1 = PageSet::for_memory(*source_);
    for (uint64_t gpa = 0; gpa < 4 * kMiB; gpa += kPageSize) change(step1, gpa, 1);
    for (uint64_t gpa = 12 * kMiB; gpa < 13 * kMiB; gpa += 3 * kPageSize) erase(step1, gpa);
    change(step1, 20 * kMiB + kPageSize, 1);
    auto d1 = write_diff_memory(*source_, step1, dir_.file("d1"), base_id_, kFast);
    ASSERT_TRUE(d1) << d1.error().message;
    EXPECT_EQ(d1->kind, MemoryFileKind::diff);
    EXPECT_EQ(d1->covered_pages, step1.count());
    d1_id_ = d1->id;

    // Step 2: overwrite part of step 1, bring back a zeroed page, zero a new one.
    PageSet step2 = PageSet::for_memory(*source_);
    for (uint64_t gpa = 2 * kMiB; gpa < 6 * kMiB; gpa += 2 * kPageSize) change(step2, gpa, 2);
    change(step2, 12 * kMiB, 2);
    erase(step2, 20 * kMiB + kPageSize);
    change(step2, 32 * kMiB - kPageSize, 2);
    auto d2 = write_diff_memory(*source_, step2, dir_.file("d2"), d1_id_, kFast);
    ASSERT_TRUE(d2) << d2.error().message;
    d2_id_ = d2->id;

    auto full = write_full_memory(*source_, dir_.file("full"), kFast);
    ASSERT_TRUE(full) << full.error().message;
  }

  void change(PageSet& set, uint64_t gpa, uint32_t seed) {
    fill_page(*source_, gpa, seed + 100);
    ASSERT_TRUE(set.add_range(gpa, kPageSize));
  }
  void erase(PageSet& set, uint64_t gpa) {
    zero_page(*source_, gpa);
    ASSERT_TRUE(set.add_range(gpa, kPageSize));
  }
  std::unique_ptr<GuestMemory> loaded(std::span<const std::string> chain) {
    auto dest = test::make_guest_memory(32 * kMiB, MemoryBacking::memfd);
    if (!dest) return nullptr;
    test::fill_all(*dest, 0x5A);
    auto result = load_memory(chain, *dest, {.threads = 3, .verify_first = false});
    EXPECT_TRUE(result) << result.error().message;
    return result ? std::move(dest) : nullptr;
  }

  test::ScratchDir dir_{"chain"};
  std::unique_ptr<GuestMemory> source_;
  SnapshotId base_id_, d1_id_, d2_id_;
};

TEST_F(SnapshotDiffChain, BasePlusTwoDiffsEqualsAFullSnapshotTakenAtTheSameMoment) {
  const std::string chain[] = {dir_.file("base"), dir_.file("d1"), dir_.file("d2")};
  const std::string full[] = {dir_.file("full")};
  auto from_chain = loaded(chain);
  auto from_full = loaded(full);
  ASSERT_TRUE(from_chain && from_full);
  EXPECT_TRUE(memory_equal(*from_chain, *from_full));
  EXPECT_TRUE(memory_equal(*from_chain, *source_));
}

TEST_F(SnapshotDiffChain, ABaseWithOnlyItsFirstDiffGivesTheIntermediateState) {
  const std::string chain[] = {dir_.file("base"), dir_.file("d1")};
  auto mem = loaded(chain);
  ASSERT_TRUE(mem);
  // 20 MiB + 4 KiB had data after step 1 and is zero after step 2.
  EXPECT_NE(*mem->read_obj<uint64_t>(20 * kMiB + kPageSize), 0u);
  EXPECT_EQ(*source_->read_obj<uint64_t>(20 * kMiB + kPageSize), 0u);
  // 12 MiB was zeroed in step 1.
  EXPECT_EQ(*mem->read_obj<uint64_t>(12 * kMiB), 0u);
}

TEST_F(SnapshotDiffChain, MergingDiffsIntoTheBaseGivesTheSameMemoryAndKeepsTheChainUsable) {
  auto m1 = merge_diff(dir_.file("base"), dir_.file("d1"), dir_.file("m1"), kFast);
  ASSERT_TRUE(m1) << m1.error().message;
  EXPECT_EQ(m1->kind, MemoryFileKind::full);
  EXPECT_EQ(m1->id, d1_id_);  // diffs taken on top of d1 apply to the merge
  // The merge of base+d1 is a valid base for d2.
  const std::string merged_chain[] = {dir_.file("m1"), dir_.file("d2")};
  auto m2 = merge_memory_chain(merged_chain, dir_.file("m2"), kFast);
  ASSERT_TRUE(m2) << m2.error().message;
  EXPECT_EQ(m2->id, d2_id_);

  const std::string full[] = {dir_.file("full")};
  const std::string merged[] = {dir_.file("m2")};
  auto from_full = loaded(full);
  auto from_merged = loaded(merged);
  auto from_chain = loaded(merged_chain);
  ASSERT_TRUE(from_full && from_merged && from_chain);
  EXPECT_TRUE(memory_equal(*from_merged, *from_full));
  EXPECT_TRUE(memory_equal(*from_chain, *from_full));
  // Zero pages stay out of the merged file: same data pages as the full one.
  auto full_info = MemoryFile::open(dir_.file("full"));
  auto merged_info = MemoryFile::open(dir_.file("m2"));
  ASSERT_TRUE(full_info && merged_info);
  EXPECT_EQ(merged_info->header().data_pages, full_info->header().data_pages);
}

TEST_F(SnapshotDiffChain, MergeCanReplaceItsBaseInPlace) {
  auto merged = merge_diff(dir_.file("base"), dir_.file("d1"), dir_.file("base"), kFast);
  ASSERT_TRUE(merged) << merged.error().message;
  const std::string chain[] = {dir_.file("base"), dir_.file("d2")};
  const std::string full[] = {dir_.file("full")};
  auto from_chain = loaded(chain);
  auto from_full = loaded(full);
  ASSERT_TRUE(from_chain && from_full);
  EXPECT_TRUE(memory_equal(*from_chain, *from_full));
}

TEST_F(SnapshotDiffChain, LoadingIntoAnonymousMemoryGivesTheSameBytesAsMemfd) {
  const std::string chain[] = {dir_.file("base"), dir_.file("d1"), dir_.file("d2")};
  auto dest = test::make_guest_memory(32 * kMiB, MemoryBacking::anonymous);
  ASSERT_TRUE(dest);
  test::fill_all(*dest, 0xFF);
  auto result = load_memory(chain, *dest, {.threads = 1, .verify_first = true});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->files, 3u);
  EXPECT_TRUE(memory_equal(*dest, *source_));
}

TEST(SnapshotMemoryWriter, DiffNeedsAParentAndAPageSetOverTheSameLayout) {
  test::ScratchDir dir("writer-args");
  auto memory = test::make_guest_memory(8 * kMiB);
  ASSERT_TRUE(memory);
  PageSet pages = PageSet::for_memory(*memory);
  auto no_parent = write_diff_memory(*memory, pages, dir.file("d"), SnapshotId{}, kFast);
  ASSERT_FALSE(no_parent);
  EXPECT_NE(no_parent.error().message.find("parent id is zero"), std::string::npos);

  const RegionSpec other[] = {{0, 16 * kMiB}};
  PageSet wrong(other);
  auto parent = SnapshotId::generate();
  ASSERT_TRUE(parent);
  auto mismatch = write_diff_memory(*memory, wrong, dir.file("d"), *parent, kFast);
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message.find("does not match guest memory"), std::string::npos)
      << mismatch.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir.file("d")));
}

TEST(SnapshotMemoryWriter, AnUnwritableDestinationFailsAndLeavesNoPartialFile) {
  test::ScratchDir dir("writer-fail");
  auto memory = test::make_guest_memory(8 * kMiB);
  ASSERT_TRUE(memory);
  auto result = write_full_memory(*memory, dir.file("missing-dir/mem"), kFast);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("missing-dir/mem"), std::string::npos)
      << result.error().message;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace
}  // namespace godwit::snapshot
