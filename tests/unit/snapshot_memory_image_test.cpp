// MemoryImage, the lookup a lazy (userfaultfd) restore is built on: for every
// page, the file and offset of its bytes in a base + 2 diffs chain (or zero),
// checked by pread against the source memory; verified whole-chunk reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "snapshot/memory_image.h"
#include "snapshot/memory_writer.h"
#include "snapshot_test_support.h"

namespace godwit::snapshot {
namespace {

using test::fill_page;
using ::testing::HasSubstr;

constexpr WriteOptions kFast{.hash_threads = 1, .sync = false};
constexpr uint64_t kSize = 8 * kMiB;

class SnapshotMemoryImage : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = test::make_guest_memory(kSize);
    ASSERT_TRUE(source_);
    for (uint64_t gpa = 0; gpa < 4 * kMiB; gpa += 2 * kPageSize) fill_page(*source_, gpa, 1);
    auto base = write_full_memory(*source_, dir_.file("base"), kFast);
    ASSERT_TRUE(base) << base.error().message;

    PageSet one = PageSet::for_memory(*source_);
    fill_page(*source_, kOnlyInDiff1, 2);
    test::zero_page(*source_, kZeroedInDiff1);
    fill_page(*source_, kInBothDiffs, 2);
    for (uint64_t gpa : {kOnlyInDiff1, kZeroedInDiff1, kInBothDiffs})
      ASSERT_TRUE(one.add_range(gpa, kPageSize));
    auto d1 = write_diff_memory(*source_, one, dir_.file("d1"), base->id, kFast);
    ASSERT_TRUE(d1) << d1.error().message;

    PageSet two = PageSet::for_memory(*source_);
    fill_page(*source_, kInBothDiffs, 3);
    fill_page(*source_, kOnlyInDiff2, 3);
    for (uint64_t gpa : {kInBothDiffs, kOnlyInDiff2}) ASSERT_TRUE(two.add_range(gpa, kPageSize));
    auto d2 = write_diff_memory(*source_, two, dir_.file("d2"), d1->id, kFast);
    ASSERT_TRUE(d2) << d2.error().message;

    auto image = MemoryImage::open(chain_);
    ASSERT_TRUE(image) << image.error().message;
    image_ = std::make_unique<MemoryImage>(std::move(*image));
  }

  static constexpr uint64_t kOnlyInDiff1 = 6 * kMiB + 3 * kPageSize;  // was zero in the base
  static constexpr uint64_t kZeroedInDiff1 = 2 * kPageSize;           // had data in the base
  static constexpr uint64_t kInBothDiffs = 2 * kMiB + 64 * kPageSize;
  static constexpr uint64_t kOnlyInDiff2 = 3 * kMiB + 1 * kPageSize;  // was zero in the base

  test::ScratchDir dir_{"image"};
  const std::vector<std::string> chain_ = {dir_.file("base"), dir_.file("d1"), dir_.file("d2")};
  std::unique_ptr<GuestMemory> source_;
  std::unique_ptr<MemoryImage> image_;
};

TEST_F(SnapshotMemoryImage, EveryPageIsFoundInTheNewestFileCoveringIt) {
  struct Expect {
    uint64_t gpa;
    size_t file;
    bool zero;
  };
  for (Expect e : {Expect{0, 0, false}, Expect{kPageSize, 0, true}, Expect{kZeroedInDiff1, 1, true},
                   Expect{kOnlyInDiff1, 1, false}, Expect{kInBothDiffs, 2, false},
                   Expect{kOnlyInDiff2, 2, false}, Expect{kSize - kPageSize, 0, true}}) {
    SCOPED_TRACE("gpa " + std::to_string(e.gpa));
    auto where = image_->locate(e.gpa + 123);  // any byte of the page
    ASSERT_TRUE(where) << where.error().message;
    EXPECT_EQ(where->file, e.file);
    EXPECT_EQ(where->zero, e.zero);
    EXPECT_EQ(where->chunk, e.gpa / (2 * kMiB));
  }
}

TEST_F(SnapshotMemoryImage, PreadAtEveryLocationGivesTheSourcePage) {
  std::vector<uint8_t> from_file(kPageSize), expected(kPageSize);
  uint64_t data_pages = 0;
  for (uint64_t gpa = 0; gpa < kSize; gpa += kPageSize) {
    auto where = image_->locate(gpa);
    ASSERT_TRUE(where) << where.error().message;
    ASSERT_TRUE(source_->read(gpa, expected));
    if (where->zero) {
      ASSERT_EQ(std::count(expected.begin(), expected.end(), 0), long(kPageSize))
          << "gpa " << gpa << " located as zero but has data";
      continue;
    }
    ++data_pages;
    EXPECT_EQ(where->fd, image_->file(where->file).fd());
    EXPECT_EQ(where->offset % kPageSize, 0u);  // page aligned: mmap-able
    ASSERT_EQ(::pread(where->fd, from_file.data(), kPageSize, off_t(where->offset)),
              ssize_t(kPageSize));
    ASSERT_EQ(from_file, expected) << "gpa " << gpa;
  }
  EXPECT_EQ(data_pages, 512u - 1 + 2);  // base pages, one zeroed, two new ones
}

TEST_F(SnapshotMemoryImage, ReadChunkMaterializesTheFinalContentOfEachChunk) {
  std::vector<uint8_t> chunk(kChunkBytes, 0xEE);
  for (size_t c = 0; c < image_->layout().size(); ++c) {
    ASSERT_TRUE(image_->read_chunk(c, chunk));
    auto expected = source_->host_span(c * kChunkBytes, kChunkBytes);
    ASSERT_TRUE(expected);
    EXPECT_TRUE(std::equal(chunk.begin(), chunk.end(), expected->begin())) << "chunk " << c;
  }
  std::vector<uint8_t> small(kPageSize);
  auto wrong_size = image_->read_chunk(0, small);
  ASSERT_FALSE(wrong_size);
  EXPECT_THAT(wrong_size.error().message, HasSubstr("the chunk has 512 pages"));
}

TEST_F(SnapshotMemoryImage, ReadChunkVerifiesEveryFileOfTheChain) {
  // Corrupt the superseded copy of kInBothDiffs in d1: the final bytes come
  // from d2, but d1's chunk no longer verifies.
  const MemoryFile& d1 = image_->file(1);
  size_t c = kInBothDiffs / kChunkBytes;
  uint64_t offset = d1.page_offset(c, (kInBothDiffs % kChunkBytes) / kPageSize);
  test::flip_bit(chain_[1], offset + 9, 5);
  std::vector<uint8_t> chunk(kChunkBytes);
  auto result = image_->read_chunk(c, chunk);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr(chain_[1] + ": chunk 1 (region 0"));
  EXPECT_THAT(result.error().message, HasSubstr("page data checksum mismatch"));
  EXPECT_FALSE(image_->verify_chunk(c));
  EXPECT_TRUE(image_->verify_chunk(0));
  EXPECT_FALSE(image_->verify_all());
}

TEST_F(SnapshotMemoryImage, DescribesItsLayoutAndRefusesAddressesOutsideIt) {
  EXPECT_EQ(image_->file_count(), 3u);
  EXPECT_EQ(image_->id(), image_->file(2).header().id);
  ASSERT_EQ(image_->regions().size(), 1u);
  EXPECT_EQ(image_->regions()[0].size, kSize);
  auto outside = image_->locate(kSize);
  ASSERT_FALSE(outside);
  EXPECT_THAT(outside.error().message, HasSubstr("gpa 0x800000 is outside the guest RAM"));
  const RegionSpec other[] = {{0, kSize}, {kHighRamStart, kSize}};
  auto mismatch = image_->check_layout(other);
  ASSERT_FALSE(mismatch);
  EXPECT_THAT(mismatch.error().message, HasSubstr("[0x0+8 MiB, 0x100000000+8 MiB]"));
}

}  // namespace
}  // namespace godwit::snapshot
