// MemoryImage: a chain of memory files [full base, diff 1, diff 2, ...] seen
// as one guest memory image. Opening it verifies each file's metadata and
// the chain (base first and full, each diff's parent id == the previous
// file's id, identical region layouts). It answers, for any page, where its
// bytes live (file + offset, or zero) — what a userfaultfd handler needs to
// UFFDIO_COPY / UFFDIO_ZEROPAGE — and materializes whole chunks with their
// checksums verified.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "snapshot/memory_file.h"

namespace godwit::snapshot {

/// Where the bytes of one page are: nowhere (zero) or in one file of the chain.
struct PageLocation {
  bool zero = true;     ///< the page is all zero; fd/offset unused
  size_t file = 0;      ///< index in the chain of the file that holds the page
  int fd = -1;          ///< that file's read-only descriptor
  uint64_t offset = 0;  ///< file offset of the page's 4 KiB
  size_t chunk = 0;     ///< chunk number (for verify_chunk before trusting the bytes)
};

/// A verified chain of memory files.
class MemoryImage {
 public:
  /// Opens every file of `chain` (base first) and checks the chain.
  [[nodiscard]] static Result<MemoryImage> open(std::span<const std::string> chain);

  /// The guest RAM layout every file of the chain describes.
  [[nodiscard]] std::span<const RegionSpec> regions() const { return layout().regions(); }
  /// The chunk geometry of that layout.
  [[nodiscard]] const ChunkLayout& layout() const { return files_.front().layout(); }
  /// Number of files in the chain.
  [[nodiscard]] size_t file_count() const { return files_.size(); }
  /// The paths of the chain's files, base first.
  [[nodiscard]] std::vector<std::string> paths() const;
  /// File `index` of the chain (0 is the full base).
  [[nodiscard]] const MemoryFile& file(size_t index) const { return files_[index]; }
  /// Id of the newest file: the snapshot the image represents.
  [[nodiscard]] const SnapshotId& id() const { return files_.back().header().id; }
  /// Fails unless `regions` equals the image's layout (error names both).
  [[nodiscard]] Result<void> check_layout(std::span<const RegionSpec> regions) const;

  /// Where the bytes of the page holding `gpa` are (the newest file that
  /// covers it wins). Unverified: see verify_chunk. Fails outside RAM.
  [[nodiscard]] Result<PageLocation> locate(uint64_t gpa) const;
  /// Index of the newest file covering page `page` of chunk `chunk`.
  [[nodiscard]] size_t owner(size_t chunk, uint32_t page) const;
  /// Reads chunk `chunk` of every file that covers part of it, verifying
  /// each checksum, and writes the final content of the chunk into `out`
  /// (layout()[chunk].pages * 4 KiB bytes, zero pages included).
  [[nodiscard]] Result<void> read_chunk(size_t chunk, std::span<uint8_t> out) const;
  /// Verifies the checksums of chunk `chunk` in every file (reads, discards).
  [[nodiscard]] Result<void> verify_chunk(size_t chunk) const;
  /// Verifies every chunk of every file.
  [[nodiscard]] Result<void> verify_all() const;

 private:
  MemoryImage() = default;
  /// verify_chunk reading into `scratch` (kChunkBytes bytes).
  [[nodiscard]] Result<void> verify_chunk_into(size_t chunk, std::span<uint8_t> scratch) const;
  std::vector<MemoryFile> files_;
};

}  // namespace godwit::snapshot
