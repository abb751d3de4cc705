// Corrupted or mismatched memory snapshots: every case fails with a message
// naming the file and what is wrong, never modifies the files, and leaves the
// destination untouched (metadata errors, or any error with verify_first) or
// reports it partially written (data errors found while loading) (issue 4
// acceptance "corrupted snapshots").
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "snapshot/memory_file.h"
#include "snapshot/memory_load.h"
#include "snapshot/memory_merge.h"
#include "snapshot/memory_writer.h"
#include "snapshot_test_support.h"

namespace godwit::snapshot {
namespace {

using test::fill_page;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kSize = 16 * kMiB;
constexpr WriteOptions kFast{.hash_threads = 1, .sync = false};

class SnapshotCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = test::make_guest_memory(kSize);
    dest_ = test::make_guest_memory(kSize);
    pristine_ = test::make_guest_memory(kSize);
    ASSERT_TRUE(source_ && dest_ && pristine_);
    for (uint64_t gpa = 0; gpa < kSize; gpa += 5 * kPageSize) fill_page(*source_, gpa, 7);
    auto base = write_full_memory(*source_, base_path(), kFast);
    ASSERT_TRUE(base) << base.error().message;
    PageSet pages = PageSet::for_memory(*source_);
    for (uint64_t gpa = 4 * kMiB; gpa < 5 * kMiB; gpa += kPageSize) {
      fill_page(*source_, gpa, 8);
      ASSERT_TRUE(pages.add_range(gpa, kPageSize));
    }
    auto diff = write_diff_memory(*source_, pages, diff_path(), base->id, kFast);
    ASSERT_TRUE(diff) << diff.error().message;
    // The destination holds a recognizable pattern, so "untouched" is checkable.
    for (uint64_t gpa = 0; gpa < kSize; gpa += kPageSize) {
      fill_page(*dest_, gpa, 3);
      fill_page(*pristine_, gpa, 3);
    }
  }

  std::string base_path() const { return dir_.file("base"); }
  std::string diff_path() const { return dir_.file("diff"); }
  MemoryFileHeader header_of(const std::string& path) {
    auto file = MemoryFile::open(path);
    EXPECT_TRUE(file) << file.error().message;
    return file ? file->header() : MemoryFileHeader{};
  }

  // Loads `chain` expecting failure; checks the files were not modified and
  // returns the message.
  std::string load_fails(std::span<const std::string> chain, bool verify_first = false) {
    std::vector<test::FileFingerprint> before;
    for (const std::string& path : chain) before.push_back(test::fingerprint(path));
    auto result = load_memory(chain, *dest_, {.threads = 2, .verify_first = verify_first});
    EXPECT_FALSE(result) << "load of a bad chain succeeded";
    for (size_t i = 0; i < chain.size(); ++i)
      EXPECT_EQ(test::fingerprint(chain[i]), before[i]) << chain[i] << " was modified";
    return result ? std::string() : result.error().message;
  }
  std::string load_base_fails(bool verify_first = false) {
    const std::string chain[] = {base_path()};
    return load_fails(chain, verify_first);
  }
  std::string load_chain_fails() {
    const std::string chain[] = {base_path(), diff_path()};
    return load_fails(chain);
  }
  void expect_destination_untouched() { EXPECT_TRUE(test::memory_equal(*dest_, *pristine_)); }

  test::ScratchDir dir_{"corrupt"};
  std::unique_ptr<GuestMemory> source_, dest_, pristine_;
};

TEST_F(SnapshotCorruption, BitFlipInPageDataNamesTheChunkAndReportsAPartialLoad) {
  MemoryFileHeader h = header_of(base_path());
  // The 100th data page lies in chunk 0 (every 5th page has data: 103 per chunk).
  test::flip_bit(base_path(), h.data_offset + 100 * kPageSize + 1234, 3);
  std::string message = load_base_fails();
  EXPECT_THAT(message, HasSubstr(base_path()));
  EXPECT_THAT(message, HasSubstr("chunk 0 (region 0 gpa 0x0-0x200000)"));
  EXPECT_THAT(message, HasSubstr("page data checksum mismatch"));
  EXPECT_THAT(message, HasSubstr("partially written"));
}

TEST_F(SnapshotCorruption, BitFlipInPageDataWithVerifyFirstLeavesTheDestinationUntouched) {
  MemoryFileHeader h = header_of(base_path());
  uint64_t last_page = h.data_offset + (h.data_pages - 1) * kPageSize;
  test::flip_bit(base_path(), last_page + kPageSize - 1, 7);
  std::string message = load_base_fails(/*verify_first=*/true);
  EXPECT_THAT(message, HasSubstr("chunk 7 (region 0 gpa 0xe00000-0x1000000)"));
  EXPECT_THAT(message, HasSubstr("page data checksum mismatch"));
  EXPECT_THAT(message, Not(HasSubstr("partially written")));
  expect_destination_untouched();
}

TEST_F(SnapshotCorruption, BitFlipInADiffsDataIsFoundToo) {
  MemoryFileHeader h = header_of(diff_path());
  test::flip_bit(diff_path(), h.data_offset + 17, 0);
  std::string message = load_chain_fails();
  EXPECT_THAT(message, HasSubstr(diff_path()));
  EXPECT_THAT(message, HasSubstr("chunk 2 (region 0 gpa 0x400000-0x600000)"));
  EXPECT_THAT(message, HasSubstr("page data checksum mismatch"));
  const std::string chain[] = {base_path(), diff_path()};
  auto verified = verify_memory_chain(chain);
  ASSERT_FALSE(verified);
  EXPECT_THAT(verified.error().message, HasSubstr("page data checksum mismatch"));
}

TEST_F(SnapshotCorruption, BitFlipAnywhereInTheHeaderBlockIsAHeaderChecksumError) {
  // id, data-page count, region table, padding, the stored hash itself.
  for (uint64_t offset : {40u, 72u, 130u, 2000u, 4095u, 121u}) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    test::flip_bit(base_path(), offset, 2);
    std::string message = load_base_fails();
    EXPECT_THAT(message, HasSubstr(base_path()));
    EXPECT_THAT(message, HasSubstr("header checksum mismatch"));
    expect_destination_untouched();
    test::flip_bit(base_path(), offset, 2);  // repair for the next offset
  }
  const std::string chain[] = {base_path()};
  EXPECT_TRUE(verify_memory_chain(chain));  // repaired: the loop really restored it
}

TEST_F(SnapshotCorruption, BadMagicVersionOrRegionCountAreNamed) {
  test::flip_bit(base_path(), 0, 1);
  EXPECT_THAT(load_base_fails(), HasSubstr("not a godwit memory file"));
  test::flip_bit(base_path(), 0, 1);
  test::flip_bit(base_path(), 8, 1);  // version 1 -> 3
  EXPECT_THAT(load_base_fails(), HasSubstr("format version 3 is not supported"));
  test::flip_bit(base_path(), 8, 1);
  test::flip_bit(base_path(), 27, 7);  // region count far above the limit
  EXPECT_THAT(load_base_fails(), HasSubstr("region count"));
  expect_destination_untouched();
}

TEST_F(SnapshotCorruption, BitFlipInTheChecksumIndexNamesTheChunk) {
  MemoryFileHeader h = header_of(base_path());
  // Chunk 5's stored data hash (byte 144 of its entry), then its bitmap.
  for (uint64_t field : {144u, 20u, 155u}) {
    SCOPED_TRACE("entry byte " + std::to_string(field));
    test::flip_bit(base_path(), h.index_offset + 5 * kChunkEntryBytes + field, 4);
    std::string message = load_base_fails();
    EXPECT_THAT(message, HasSubstr("chunk 5 (region 0 gpa 0xa00000-0xc00000)"));
    EXPECT_THAT(message, HasSubstr("index entry checksum mismatch"));
    expect_destination_untouched();
    test::flip_bit(base_path(), h.index_offset + 5 * kChunkEntryBytes + field, 4);
  }
}

TEST_F(SnapshotCorruption, TruncationAndTrailingBytesAreDetected) {
  uint64_t size = test::file_size(base_path());
  std::string original = test::fingerprint(base_path()).contents;
  ASSERT_EQ(::truncate(base_path().c_str(), static_cast<off_t>(size - 1)), 0);
  std::string message = load_base_fails();
  EXPECT_THAT(message, HasSubstr("truncated: file is " + std::to_string(size - 1) +
                                 " bytes, its header says " + std::to_string(size)));
  ASSERT_EQ(::truncate(base_path().c_str(), 5000), 0);
  EXPECT_THAT(load_base_fails(), HasSubstr("truncated"));
  ASSERT_EQ(::truncate(base_path().c_str(), 100), 0);
  EXPECT_THAT(load_base_fails(), HasSubstr("smaller than the 128-byte header"));
  ASSERT_EQ(::truncate(base_path().c_str(), 0), 0);
  EXPECT_THAT(load_base_fails(), HasSubstr("truncated"));
  std::ofstream(base_path(), std::ios::binary | std::ios::trunc) << original << "x";
  EXPECT_THAT(load_base_fails(), HasSubstr("1 unexpected trailing bytes"));
  expect_destination_untouched();
}

TEST_F(SnapshotCorruption, ADiffOnTheWrongBaseOrInTheWrongOrderIsRefused) {
  // Another base: same layout, different id.
  ASSERT_TRUE(write_full_memory(*source_, dir_.file("other-base"), kFast));
  const std::string wrong_base[] = {dir_.file("other-base"), diff_path()};
  std::string message = load_fails(wrong_base);
  EXPECT_THAT(message, HasSubstr("diff " + diff_path() + " was taken on top of snapshot " +
                                 header_of(base_path()).id.hex()));
  EXPECT_THAT(message, HasSubstr("wrong base or wrong order"));

  const std::string diff_first[] = {diff_path(), base_path()};
  EXPECT_THAT(load_fails(diff_first), HasSubstr("a chain starts with a full snapshot"));
  const std::string two_bases[] = {base_path(), dir_.file("other-base")};
  EXPECT_THAT(load_fails(two_bases), HasSubstr("only the first file of a chain may be full"));
  const std::string empty[] = {base_path()};
  EXPECT_THAT(load_fails(std::span(empty, 0)), HasSubstr("chain is empty"));
  expect_destination_untouched();

  auto merged = merge_diff(dir_.file("other-base"), diff_path(), dir_.file("merged"), kFast);
  ASSERT_FALSE(merged);
  EXPECT_THAT(merged.error().message, HasSubstr("wrong base or wrong order"));
  EXPECT_FALSE(std::filesystem::exists(dir_.file("merged")));
}

TEST_F(SnapshotCorruption, ADestinationWithAnotherLayoutIsRefusedBeforeAnyWrite) {
  auto bigger = test::make_guest_memory(2 * kSize);
  ASSERT_TRUE(bigger);
  fill_page(*bigger, 0, 3);
  const std::string chain[] = {base_path()};
  auto result = load_memory(chain, *bigger);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message,
              HasSubstr("holds guest RAM [0x0+16 MiB] but the destination guest memory is "
                        "[0x0+32 MiB]"));
  EXPECT_NE(*bigger->read_obj<uint64_t>(0), 0u);  // untouched
}

TEST_F(SnapshotCorruption, AMissingFileIsNamed) {
  const std::string chain[] = {base_path(), dir_.file("no-such-diff")};
  std::string message = load_fails(chain);
  EXPECT_THAT(message, HasSubstr("open memory file " + dir_.file("no-such-diff")));
  EXPECT_THAT(message, HasSubstr("No such file"));
}

}  // namespace
}  // namespace godwit::snapshot
