// MemoryFile: one memory file opened read-only, with its header, region table
// and whole chunk index verified at open (magic, version, header checksum,
// geometry, exact file size, every index entry's checksum and consistency).
// Page data is verified chunk by chunk as it is read. Nothing here ever
// writes to the file.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "snapshot/memory_file_format.h"

namespace godwit::snapshot {

/// A verified, read-only memory file.
class MemoryFile {
 public:
  /// Opens `path` O_RDONLY and verifies everything but the page data.
  [[nodiscard]] static Result<MemoryFile> open(const std::string& path);

  /// The path given to open().
  [[nodiscard]] const std::string& path() const { return path_; }
  /// The decoded header and regions.
  [[nodiscard]] const MemoryFileHeader& header() const { return header_; }
  /// The chunk geometry of the file's regions.
  [[nodiscard]] const ChunkLayout& layout() const { return layout_; }
  /// Index entry of chunk `index`.
  [[nodiscard]] const ChunkEntry& chunk(size_t index) const { return entries_[index]; }
  /// The read-only descriptor (for pread / mmap by a lazy-restore handler).
  [[nodiscard]] int fd() const { return fd_.get(); }
  /// File offset of page `page` of chunk `index`, which must be present.
  [[nodiscard]] uint64_t page_offset(size_t index, uint32_t page) const;

  /// Reads the data pages of chunk `index` and verifies their checksum.
  /// `targets` has one destination pointer per data page, in page order
  /// (entry.data_pages of them); adjacent destinations are read with one
  /// iovec. On a checksum failure the targets hold the (bad) bytes read.
  [[nodiscard]] Result<void> read_chunk_data(size_t index, std::span<uint8_t* const> targets) const;

  /// "memory file <path>: <chunk description>" prefix for errors.
  [[nodiscard]] std::string where(size_t index) const;

 private:
  MemoryFile() = default;
  [[nodiscard]] Result<void> read_exact(uint64_t offset, std::span<uint8_t> out,
                                        const std::string& what) const;
  [[nodiscard]] Result<void> check_geometry(uint64_t actual_size) const;
  [[nodiscard]] Result<void> load_index();

  std::string path_;
  UniqueFd fd_;
  MemoryFileHeader header_;
  ChunkLayout layout_;
  std::vector<ChunkEntry> entries_;
};

}  // namespace godwit::snapshot
