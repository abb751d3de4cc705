// The on-disk format of one guest-memory snapshot file (full or diff): the
// header block, the chunk index, snapshot ids, the chunk geometry shared by
// writers and readers, and the checksums that bind every byte to its place.
//
//   offset 0            +--------------------------------------------------+
//                       | header (128 bytes, little-endian)                |
//                       |   magic "GODWITMF", version, page size, chunk    |
//                       |   pages, kind, region count, snapshot id, parent |
//                       |   id, data/index offsets, sizes, header hash     |
//   128                 | region table: region_count x {gpa u64, size u64} |
//                       | zero padding                                     |
//   data_offset (4 KiB) +--------------------------------------------------+
//                       | page data: only pages that are covered AND not   |
//                       | all-zero, chunk by chunk, page order inside a    |
//                       | chunk, each page 4 KiB, page-aligned in the file |
//   index_offset        +--------------------------------------------------+
//                       | chunk index: one 160-byte entry per 2 MiB chunk  |
//                       |   {data offset, data pages, covered count,       |
//                       |    covered bitmap[512], present bitmap[512],     |
//                       |    data hash, entry hash}                        |
//   file_size           +--------------------------------------------------+
//
// Chunks never cross regions: region r has ceil(size / 2 MiB) chunks, the
// last one possibly short; chunk numbers run over the regions in order.
// docs/snapshot-memory.md explains the choices.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::snapshot {

/// First 8 bytes of every memory file.
inline constexpr std::array<uint8_t, 8> kMemoryFileMagic = {'G', 'O', 'D', 'W', 'I', 'T', 'M', 'F'};
/// The format version this code writes; readers accept [kMinMemoryFileVersion, this].
inline constexpr uint32_t kMemoryFileVersion = 1;
/// Oldest format version this code reads.
inline constexpr uint32_t kMinMemoryFileVersion = 1;
/// Pages per checksummed chunk (2 MiB of guest address space).
inline constexpr uint32_t kChunkPages = 512;
/// Guest bytes per chunk.
inline constexpr uint64_t kChunkBytes = kChunkPages * kPageSize;
/// 64-bit words in one chunk bitmap.
inline constexpr size_t kChunkBitmapWords = kChunkPages / 64;
/// Bytes of the fixed header.
inline constexpr size_t kHeaderBytes = 128;
/// Bytes of one region-table entry.
inline constexpr size_t kRegionEntryBytes = 16;
/// Bytes of one chunk-index entry.
inline constexpr size_t kChunkEntryBytes = 160;
/// Most regions a memory file may describe (keeps the header block one page).
inline constexpr uint32_t kMaxRegions = 64;

/// Whether a file holds every page (full) or only the pages of a page set (diff).
enum class MemoryFileKind : uint32_t { full = 1, diff = 2 };

/// "full" or "diff".
[[nodiscard]] const char* kind_name(MemoryFileKind kind);

/// 128 random bits naming one snapshot; a diff names its parent by it.
struct SnapshotId {
  std::array<uint8_t, 16> bytes{};

  /// A fresh random id (getrandom).
  [[nodiscard]] static Result<SnapshotId> generate();
  /// 32 lowercase hex digits.
  [[nodiscard]] std::string hex() const;
  /// True for the all-zero id (a full snapshot's parent).
  [[nodiscard]] bool is_zero() const;
  /// Seed mixed into every checksum of the file, so that data or index
  /// entries copied from another snapshot never verify.
  [[nodiscard]] uint64_t seed() const;
  friend bool operator==(const SnapshotId&, const SnapshotId&) = default;
};

/// One bit per page of a chunk (bit p of word p / 64 = page p).
using ChunkBitmap = std::array<uint64_t, kChunkBitmapWords>;

/// True when page `p` is set in `bits`.
[[nodiscard]] inline bool bit_test(const ChunkBitmap& bits, uint32_t p) {
  return (bits[p / 64] >> (p % 64)) & 1;
}
/// Sets page `p` in `bits`.
inline void bit_set(ChunkBitmap& bits, uint32_t p) { bits[p / 64] |= uint64_t{1} << (p % 64); }
/// Number of set pages in `bits`.
[[nodiscard]] uint32_t bit_count(const ChunkBitmap& bits);
/// Number of set pages below page `p`.
[[nodiscard]] uint32_t bit_rank(const ChunkBitmap& bits, uint32_t p);
/// The first `pages` bits set, the rest clear.
[[nodiscard]] ChunkBitmap bits_first(uint32_t pages);

/// Where one chunk lies: its region, first guest address and page count.
struct ChunkInfo {
  uint32_t region = 0;
  uint64_t gpa = 0;
  uint32_t pages = 0;
};

/// The chunk geometry of a region layout (pure; shared by writer and reader).
class ChunkLayout {
 public:
  ChunkLayout() = default;
  /// Splits each region into 2 MiB chunks (the last one of a region may be short).
  explicit ChunkLayout(std::span<const RegionSpec> regions);
  /// The regions this layout was built from.
  [[nodiscard]] std::span<const RegionSpec> regions() const { return regions_; }
  /// Number of chunks over all regions.
  [[nodiscard]] size_t size() const { return chunks_.size(); }
  /// Chunk `index` (must be < size()).
  [[nodiscard]] const ChunkInfo& operator[](size_t index) const { return chunks_[index]; }
  /// The chunk holding `gpa`, or nullopt outside every region.
  [[nodiscard]] std::optional<size_t> chunk_of(uint64_t gpa) const;
  /// Total guest pages over all regions.
  [[nodiscard]] uint64_t total_pages() const { return total_pages_; }
  /// "chunk 37 (region 0 gpa 0x4a00000-0x4c00000)" for error messages.
  [[nodiscard]] std::string describe(size_t index) const;

 private:
  std::vector<RegionSpec> regions_;
  std::vector<ChunkInfo> chunks_;
  std::vector<size_t> first_chunk_;  ///< per region
  uint64_t total_pages_ = 0;
};

/// The decoded header and region table of a memory file.
struct MemoryFileHeader {
  uint32_t version = kMemoryFileVersion;
  uint32_t page_size = kPageSize;
  uint32_t chunk_pages = kChunkPages;
  MemoryFileKind kind = MemoryFileKind::full;
  SnapshotId id{};
  SnapshotId parent{};         ///< all zero for a full snapshot
  uint64_t data_offset = 0;    ///< file offset of the first data page
  uint64_t data_pages = 0;     ///< pages stored in the data area
  uint64_t index_offset = 0;   ///< file offset of the chunk index
  uint64_t chunk_count = 0;    ///< entries in the chunk index
  uint64_t file_size = 0;      ///< exact expected file size
  uint64_t covered_pages = 0;  ///< pages the file speaks for (data or zero)
  std::vector<RegionSpec> regions;
};

/// One chunk-index entry: which pages the file covers, which of them have
/// data (the others are zero), where that data starts and its checksum.
struct ChunkEntry {
  uint64_t data_offset = 0;
  uint32_t data_pages = 0;
  uint32_t covered_count = 0;
  ChunkBitmap covered{};
  ChunkBitmap present{};
  uint64_t data_hash = 0;

  friend bool operator==(const ChunkEntry&, const ChunkEntry&) = default;
};

/// "[0x0+3 GiB, 0x100000000+1 GiB]" for error messages.
[[nodiscard]] std::string describe_regions(std::span<const RegionSpec> regions);
/// True when both layouts have the same regions in the same order.
[[nodiscard]] bool same_regions(std::span<const RegionSpec> a, std::span<const RegionSpec> b);
/// "0x1234" for error messages.
[[nodiscard]] std::string hex_u64(uint64_t value);

/// Offset of the data area for `region_count` regions (page aligned).
[[nodiscard]] uint64_t data_offset_for(size_t region_count);
/// The header block [0, data_offset): header, region table, padding, with its hash.
[[nodiscard]] std::vector<uint8_t> encode_header_block(const MemoryFileHeader& header);
/// Decodes the fixed fields of the first kHeaderBytes (regions left empty);
/// checks magic, version and the region count only. `path` names the file in errors.
[[nodiscard]] Result<MemoryFileHeader> decode_header_fixed(std::span<const uint8_t> bytes,
                                                           const std::string& path);
/// Verifies the hash of the whole header block and decodes the region table
/// into `header` (whose fixed fields came from decode_header_fixed).
[[nodiscard]] Result<void> decode_header_block(std::span<const uint8_t> block,
                                               MemoryFileHeader& header, const std::string& path);

/// Encodes chunk entry `index` of a file with id `id` (kChunkEntryBytes bytes).
void encode_chunk_entry(const ChunkEntry& entry, size_t index, const SnapshotId& id,
                        std::span<uint8_t> out);
/// Decodes one entry, failing when its entry hash does not match.
[[nodiscard]] Result<ChunkEntry> decode_chunk_entry(std::span<const uint8_t> bytes, size_t index,
                                                    const SnapshotId& id);

/// Checksum of a chunk's data pages, seeded with the file id and chunk address.
class ChunkHasher {
 public:
  ChunkHasher(const SnapshotId& id, uint64_t chunk_gpa);
  ~ChunkHasher();
  ChunkHasher(const ChunkHasher&) = delete;
  ChunkHasher& operator=(const ChunkHasher&) = delete;
  /// Adds the next data bytes.
  void update(const uint8_t* data, size_t len);
  /// The hash of everything added.
  [[nodiscard]] uint64_t digest() const;

 private:
  void* state_;
};

/// True when the page at `page` (kPageSize bytes) is all zero.
[[nodiscard]] bool page_is_zero(const uint8_t* page);

}  // namespace godwit::snapshot
