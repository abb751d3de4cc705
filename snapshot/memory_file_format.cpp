// Memory file format: little-endian encoding of the header block and chunk
// index entries, their XXH3 checksums, snapshot ids and chunk geometry.
#include "snapshot/memory_file_format.h"

#include <sys/random.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace godwit::snapshot {
namespace {

// Field offsets inside the 128-byte header.
constexpr size_t kOffVersion = 8;
constexpr size_t kOffPageSize = 12;
constexpr size_t kOffChunkPages = 16;
constexpr size_t kOffKind = 20;
constexpr size_t kOffRegionCount = 24;
constexpr size_t kOffId = 32;
constexpr size_t kOffParent = 48;
constexpr size_t kOffDataOffset = 64;
constexpr size_t kOffDataPages = 72;
constexpr size_t kOffIndexOffset = 80;
constexpr size_t kOffChunkCount = 88;
constexpr size_t kOffFileSize = 96;
constexpr size_t kOffCoveredPages = 104;
constexpr size_t kOffHeaderHash = 120;

// Field offsets inside a 160-byte chunk entry.
constexpr size_t kEntryDataOffset = 0;
constexpr size_t kEntryDataPages = 8;
constexpr size_t kEntryCoveredCount = 12;
constexpr size_t kEntryCovered = 16;
constexpr size_t kEntryPresent = 80;
constexpr size_t kEntryDataHash = 144;
constexpr size_t kEntryHash = 152;

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{p[i]} << (8 * i);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// Hash of the header block with its own hash field read as zero.
uint64_t header_block_hash(std::span<const uint8_t> block) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  const uint8_t zeros[8] = {};
  XXH3_64bits_update(state, block.data(), kOffHeaderHash);
  XXH3_64bits_update(state, zeros, sizeof zeros);
  XXH3_64bits_update(state, block.data() + kHeaderBytes, block.size() - kHeaderBytes);
  uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return hash;
}

uint64_t entry_seed(const SnapshotId& id, size_t index) {
  return id.seed() ^ (0x9e3779b97f4a7c15ull * (index + 1));
}

}  // namespace

const char* kind_name(MemoryFileKind kind) {
  switch (kind) {
    case MemoryFileKind::full:
      return "full";
    case MemoryFileKind::diff:
      return "diff";
  }
  return "?";
}

Result<SnapshotId> SnapshotId::generate() {
  SnapshotId id;
  ssize_t n = ::getrandom(id.bytes.data(), id.bytes.size(), 0);
  if (n != static_cast<ssize_t>(id.bytes.size())) return fail_errno("getrandom for a snapshot id");
  if (id.is_zero()) id.bytes[0] = 1;  // zero means "no parent"
  return id;
}

std::string SnapshotId::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

bool SnapshotId::is_zero() const {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

uint64_t SnapshotId::seed() const { return get_u64(bytes.data()) ^ get_u64(bytes.data() + 8); }

uint32_t bit_count(const ChunkBitmap& bits) {
  uint32_t n = 0;
  for (uint64_t w : bits) n += std::popcount(w);
  return n;
}

uint32_t bit_rank(const ChunkBitmap& bits, uint32_t p) {
  uint32_t n = 0;
  for (uint32_t w = 0; w < p / 64; ++w) n += std::popcount(bits[w]);
  if (p % 64 != 0) n += std::popcount(bits[p / 64] & ((uint64_t{1} << (p % 64)) - 1));
  return n;
}

ChunkBitmap bits_first(uint32_t pages) {
  ChunkBitmap bits{};
  for (uint32_t w = 0; w < kChunkBitmapWords && pages > 0; ++w) {
    uint32_t n = std::min<uint32_t>(pages, 64);
    bits[w] = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
    pages -= n;
  }
  return bits;
}

ChunkLayout::ChunkLayout(std::span<const RegionSpec> regions)
    : regions_(regions.begin(), regions.end()) {
  for (size_t r = 0; r < regions_.size(); ++r) {
    first_chunk_.push_back(chunks_.size());
    uint64_t pages = regions_[r].size / kPageSize;
    total_pages_ += pages;
    for (uint64_t first = 0; first < pages; first += kChunkPages) {
      auto n = static_cast<uint32_t>(std::min<uint64_t>(kChunkPages, pages - first));
      chunks_.push_back({static_cast<uint32_t>(r), regions_[r].gpa + first * kPageSize, n});
    }
  }
}

std::optional<size_t> ChunkLayout::chunk_of(uint64_t gpa) const {
  for (size_t r = 0; r < regions_.size(); ++r) {
    const RegionSpec& region = regions_[r];
    if (gpa >= region.gpa && gpa - region.gpa < region.size)
      return first_chunk_[r] + (gpa - region.gpa) / kChunkBytes;
  }
  return std::nullopt;
}

std::string ChunkLayout::describe(size_t index) const {
  const ChunkInfo& c = chunks_[index];
  return "chunk " + std::to_string(index) + " (region " + std::to_string(c.region) + " gpa " +
         hex_u64(c.gpa) + "-" + hex_u64(c.gpa + uint64_t{c.pages} * kPageSize) + ")";
}

std::string hex_u64(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string describe_regions(std::span<const RegionSpec> regions) {
  std::string out = "[";
  for (size_t i = 0; i < regions.size(); ++i) {
    if (i > 0) out += ", ";
    out += hex_u64(regions[i].gpa) + "+" + format_size(regions[i].size);
  }
  return out + "]";
}

bool same_regions(std::span<const RegionSpec> a, std::span<const RegionSpec> b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(),
      [](const RegionSpec& x, const RegionSpec& y) { return x.gpa == y.gpa && x.size == y.size; });
}

uint64_t data_offset_for(size_t region_count) {
  uint64_t end = kHeaderBytes + region_count * kRegionEntryBytes;
  return (end + kPageSize - 1) / kPageSize * kPageSize;
}

std::vector<uint8_t> encode_header_block(const MemoryFileHeader& h) {
  std::vector<uint8_t> block(h.data_offset, 0);
  uint8_t* p = block.data();
  std::memcpy(p, kMemoryFileMagic.data(), kMemoryFileMagic.size());
  put_u32(p + kOffVersion, h.version);
  put_u32(p + kOffPageSize, h.page_size);
  put_u32(p + kOffChunkPages, h.chunk_pages);
  put_u32(p + kOffKind, static_cast<uint32_t>(h.kind));
  put_u32(p + kOffRegionCount, static_cast<uint32_t>(h.regions.size()));
  std::memcpy(p + kOffId, h.id.bytes.data(), 16);
  std::memcpy(p + kOffParent, h.parent.bytes.data(), 16);
  put_u64(p + kOffDataOffset, h.data_offset);
  put_u64(p + kOffDataPages, h.data_pages);
  put_u64(p + kOffIndexOffset, h.index_offset);
  put_u64(p + kOffChunkCount, h.chunk_count);
  put_u64(p + kOffFileSize, h.file_size);
  put_u64(p + kOffCoveredPages, h.covered_pages);
  for (size_t r = 0; r < h.regions.size(); ++r) {
    put_u64(p + kHeaderBytes + r * kRegionEntryBytes, h.regions[r].gpa);
    put_u64(p + kHeaderBytes + r * kRegionEntryBytes + 8, h.regions[r].size);
  }
  put_u64(p + kOffHeaderHash, header_block_hash(block));
  return block;
}

Result<MemoryFileHeader> decode_header_fixed(std::span<const uint8_t> bytes,
                                             const std::string& path) {
  std::string where = "memory file " + path;
  if (bytes.size() < kHeaderBytes)
    return fail(where + ": truncated: " + std::to_string(bytes.size()) +
                " bytes, smaller than the " + std::to_string(kHeaderBytes) + "-byte header");
  const uint8_t* p = bytes.data();
  if (std::memcmp(p, kMemoryFileMagic.data(), kMemoryFileMagic.size()) != 0)
    return fail(where + ": not a godwit memory file (bad magic; expected \"GODWITMF\")");
  MemoryFileHeader h;
  h.version = get_u32(p + kOffVersion);
  if (h.version < kMinMemoryFileVersion || h.version > kMemoryFileVersion)
    return fail(where + ": format version " + std::to_string(h.version) +
                " is not supported (this build reads versions " +
                std::to_string(kMinMemoryFileVersion) + " to " +
                std::to_string(kMemoryFileVersion) + ")");
  h.page_size = get_u32(p + kOffPageSize);
  h.chunk_pages = get_u32(p + kOffChunkPages);
  h.kind = static_cast<MemoryFileKind>(get_u32(p + kOffKind));
  uint32_t region_count = get_u32(p + kOffRegionCount);
  if (region_count == 0 || region_count > kMaxRegions)
    return fail(where + ": header is corrupted: region count " + std::to_string(region_count) +
                " (must be 1 to " + std::to_string(kMaxRegions) + ")");
  h.regions.resize(region_count);
  std::memcpy(h.id.bytes.data(), p + kOffId, 16);
  std::memcpy(h.parent.bytes.data(), p + kOffParent, 16);
  h.data_offset = get_u64(p + kOffDataOffset);
  h.data_pages = get_u64(p + kOffDataPages);
  h.index_offset = get_u64(p + kOffIndexOffset);
  h.chunk_count = get_u64(p + kOffChunkCount);
  h.file_size = get_u64(p + kOffFileSize);
  h.covered_pages = get_u64(p + kOffCoveredPages);
  return h;
}

Result<void> decode_header_block(std::span<const uint8_t> block, MemoryFileHeader& h,
                                 const std::string& path) {
  std::string where = "memory file " + path;
  if (block.size() < kHeaderBytes + h.regions.size() * kRegionEntryBytes)
    return fail(where + ": header block of " + std::to_string(block.size()) +
                " bytes cannot hold " + std::to_string(h.regions.size()) + " regions");
  uint64_t stored = get_u64(block.data() + kOffHeaderHash);
  uint64_t actual = header_block_hash(block);
  if (stored != actual)
    return fail(where + ": header checksum mismatch (stored " + hex_u64(stored) + ", computed " +
                hex_u64(actual) + "): the header or region table [0, " +
                std::to_string(block.size()) + ") is corrupted");
  for (size_t r = 0; r < h.regions.size(); ++r) {
    h.regions[r].gpa = get_u64(block.data() + kHeaderBytes + r * kRegionEntryBytes);
    h.regions[r].size = get_u64(block.data() + kHeaderBytes + r * kRegionEntryBytes + 8);
  }
  return {};
}

void encode_chunk_entry(const ChunkEntry& e, size_t index, const SnapshotId& id,
                        std::span<uint8_t> out) {
  uint8_t* p = out.data();
  put_u64(p + kEntryDataOffset, e.data_offset);
  put_u32(p + kEntryDataPages, e.data_pages);
  put_u32(p + kEntryCoveredCount, e.covered_count);
  for (size_t w = 0; w < kChunkBitmapWords; ++w) {
    put_u64(p + kEntryCovered + 8 * w, e.covered[w]);
    put_u64(p + kEntryPresent + 8 * w, e.present[w]);
  }
  put_u64(p + kEntryDataHash, e.data_hash);
  put_u64(p + kEntryHash, XXH3_64bits_withSeed(p, kEntryHash, entry_seed(id, index)));
}

Result<ChunkEntry> decode_chunk_entry(std::span<const uint8_t> bytes, size_t index,
                                      const SnapshotId& id) {
  const uint8_t* p = bytes.data();
  uint64_t stored = get_u64(p + kEntryHash);
  uint64_t actual = XXH3_64bits_withSeed(p, kEntryHash, entry_seed(id, index));
  if (stored != actual)
    return fail("index entry checksum mismatch (stored " + hex_u64(stored) + ", computed " +
                hex_u64(actual) + ")");
  ChunkEntry e;
  e.data_offset = get_u64(p + kEntryDataOffset);
  e.data_pages = get_u32(p + kEntryDataPages);
  e.covered_count = get_u32(p + kEntryCoveredCount);
  for (size_t w = 0; w < kChunkBitmapWords; ++w) {
    e.covered[w] = get_u64(p + kEntryCovered + 8 * w);
    e.present[w] = get_u64(p + kEntryPresent + 8 * w);
  }
  e.data_hash = get_u64(p + kEntryDataHash);
  return e;
}

ChunkHasher::ChunkHasher(const SnapshotId& id, uint64_t chunk_gpa) : state_(XXH3_createState()) {
  XXH3_64bits_reset_withSeed(static_cast<XXH3_state_t*>(state_), id.seed() ^ chunk_gpa);
}

ChunkHasher::~ChunkHasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void ChunkHasher::update(const uint8_t* data, size_t len) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, len);
}

uint64_t ChunkHasher::digest() const {
  return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_));
}

bool page_is_zero(const uint8_t* page) {
  // 64 bytes per step with an OR-reduction the compiler vectorizes; exits at
  // the first non-zero cache line (most non-zero pages fail in the first one).
  for (size_t off = 0; off < kPageSize; off += 64) {
    uint64_t acc = 0;
    for (size_t i = 0; i < 64; i += 8) {
      uint64_t w;
      std::memcpy(&w, page + off + i, 8);
      acc |= w;
    }
    if (acc != 0) return false;
  }
  return true;
}

}  // namespace godwit::snapshot
