// Golden bytes of the memory file header and chunk index entry, so that an
// accidental format change fails here first; chunk geometry; id helpers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "snapshot/memory_file_format.h"
#include "test_util.h"

namespace godwit::snapshot {
namespace {

using ::testing::HasSubstr;

SnapshotId fixed_id(uint8_t first) {
  SnapshotId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(first + i);
  return id;
}

MemoryFileHeader sample_header() {
  MemoryFileHeader h;
  h.kind = MemoryFileKind::diff;
  h.id = fixed_id(0x10);
  h.parent = fixed_id(0x20);
  h.regions = {{0, 3 * kGiB}, {kHighRamStart, 2 * kMiB}};
  h.data_offset = data_offset_for(2);
  h.data_pages = 3;
  h.index_offset = h.data_offset + 3 * kPageSize;
  h.chunk_count = 1537;
  h.file_size = h.index_offset + 1537 * kChunkEntryBytes;
  h.covered_pages = 9;
  return h;
}

TEST(SnapshotMemoryFormat, HeaderGoldenBytes) {
  std::vector<uint8_t> block = encode_header_block(sample_header());
  ASSERT_EQ(block.size(), 4096u);
  auto at = [&](size_t offset, size_t n) {
    return std::vector<uint8_t>(block.begin() + long(offset), block.begin() + long(offset + n));
  };
  EXPECT_EQ(at(0, 8), (std::vector<uint8_t>{'G', 'O', 'D', 'W', 'I', 'T', 'M', 'F'}));
  EXPECT_EQ(at(8, 16), (std::vector<uint8_t>{1, 0, 0, 0, 0, 0x10, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0}));
  EXPECT_EQ(at(24, 4), (std::vector<uint8_t>{2, 0, 0, 0}));                   // region count
  EXPECT_EQ(block[32], 0x10);                                                 // id
  EXPECT_EQ(block[48], 0x20);                                                 // parent
  EXPECT_EQ(at(64, 8), (std::vector<uint8_t>{0, 0x10, 0, 0, 0, 0, 0, 0}));    // data offset 4096
  EXPECT_EQ(at(72, 8), (std::vector<uint8_t>{3, 0, 0, 0, 0, 0, 0, 0}));       // data pages
  EXPECT_EQ(at(88, 8), (std::vector<uint8_t>{1, 6, 0, 0, 0, 0, 0, 0}));       // 1537 chunks
  EXPECT_EQ(at(104, 8), (std::vector<uint8_t>{9, 0, 0, 0, 0, 0, 0, 0}));      // covered pages
  EXPECT_EQ(at(112, 8), std::vector<uint8_t>(8, 0));                          // reserved
  EXPECT_EQ(at(128, 16), (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0,        // region 0 gpa
                                               0, 0, 0, 0xc0, 0, 0, 0, 0}));  // 3 GiB
  EXPECT_EQ(at(144, 8), (std::vector<uint8_t>{0, 0, 0, 0, 1, 0, 0, 0}));      // region 1 at 4 GiB
  EXPECT_EQ(at(160, 4096 - 160), std::vector<uint8_t>(4096 - 160, 0));        // padding

  auto fixed = decode_header_fixed(block, "golden");
  ASSERT_TRUE(fixed) << fixed.error().message;
  ASSERT_TRUE(decode_header_block(block, *fixed, "golden"));
  MemoryFileHeader h = sample_header();
  EXPECT_EQ(fixed->kind, h.kind);
  EXPECT_EQ(fixed->id, h.id);
  EXPECT_EQ(fixed->parent, h.parent);
  EXPECT_EQ(fixed->file_size, h.file_size);
  EXPECT_TRUE(same_regions(fixed->regions, h.regions));
}

TEST(SnapshotMemoryFormat, ChunkEntryRoundTripsAndIsBoundToItsIndexAndFile) {
  ChunkEntry e;
  e.data_offset = 8192;
  e.data_pages = 2;
  e.covered_count = 3;
  e.covered[0] = 0b111;
  e.present[0] = 0b101;
  e.data_hash = 0x1122334455667788;
  std::vector<uint8_t> bytes(kChunkEntryBytes);
  encode_chunk_entry(e, 4, fixed_id(1), bytes);
  EXPECT_EQ(bytes[0], 0x00);
  EXPECT_EQ(bytes[1], 0x20);  // 8192 little-endian
  EXPECT_EQ(bytes[8], 2);
  EXPECT_EQ(bytes[12], 3);
  EXPECT_EQ(bytes[16], 0b111);
  EXPECT_EQ(bytes[80], 0b101);
  EXPECT_EQ(bytes[144], 0x88);
  auto decoded = decode_chunk_entry(bytes, 4, fixed_id(1));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, e);
  // The same bytes at another index or in another file do not verify.
  EXPECT_FALSE(decode_chunk_entry(bytes, 5, fixed_id(1)));
  auto other_file = decode_chunk_entry(bytes, 4, fixed_id(2));
  ASSERT_FALSE(other_file);
  EXPECT_THAT(other_file.error().message, HasSubstr("index entry checksum mismatch"));
}

TEST(SnapshotMemoryFormat, ChunksSplitEachRegionAndNeverCrossOne) {
  const RegionSpec regions[] = {{0, 5 * kMiB}, {kHighRamStart, 4 * kMiB + kPageSize}};
  ChunkLayout layout(regions);
  ASSERT_EQ(layout.size(), 6u);
  EXPECT_EQ(layout[2].pages, 256u);  // 5 MiB = 2 full chunks + a half
  EXPECT_EQ(layout[3].gpa, kHighRamStart);
  EXPECT_EQ(layout[5].pages, 1u);
  EXPECT_EQ(layout.total_pages(), (9 * kMiB + kPageSize) / kPageSize);
  EXPECT_EQ(layout.chunk_of(4 * kMiB + 1), 2u);
  EXPECT_EQ(layout.chunk_of(kHighRamStart + 4 * kMiB), 5u);
  EXPECT_FALSE(layout.chunk_of(5 * kMiB));
  EXPECT_EQ(layout.describe(3), "chunk 3 (region 1 gpa 0x100000000-0x100200000)");
}

TEST(SnapshotMemoryFormat, BitmapHelpersAndIds) {
  ChunkBitmap bits = bits_first(70);
  EXPECT_EQ(bit_count(bits), 70u);
  EXPECT_EQ(bits[1], 0x3fu);
  EXPECT_EQ(bit_rank(bits, 65), 65u);
  EXPECT_EQ(bit_rank(bits, 200), 70u);
  EXPECT_EQ(bit_count(bits_first(512)), 512u);

  auto a = SnapshotId::generate();
  auto b = SnapshotId::generate();
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_FALSE(a->is_zero());
  EXPECT_TRUE(SnapshotId{}.is_zero());
  EXPECT_EQ(fixed_id(0xa0).hex(), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  std::vector<uint8_t> page(kPageSize, 0);
  EXPECT_TRUE(page_is_zero(page.data()));
  page[kPageSize - 1] = 1;
  EXPECT_FALSE(page_is_zero(page.data()));
}

}  // namespace
}  // namespace godwit::snapshot
