// MemoryFileBuilder: writes one memory file chunk by chunk. Data pages are
// streamed with large writev() calls straight from the caller's memory; the
// chunk index and then the header are written last, into a temporary file
// that is renamed over the destination only when complete, so a crash or an
// error never leaves a file that looks valid.
#pragma once

#include <sys/uio.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "snapshot/memory_file_format.h"

namespace godwit::snapshot {

/// What was written: the new file's id and sizes.
struct MemoryFileSummary {
  SnapshotId id{};
  MemoryFileKind kind = MemoryFileKind::full;
  uint64_t covered_pages = 0;  ///< pages the file speaks for
  uint64_t data_pages = 0;     ///< non-zero pages stored
  uint64_t file_bytes = 0;     ///< size of the file
};

/// Which pages of a chunk go into the file (covered), which of those have
/// data (present; the others are zero) and the checksum of that data.
struct ChunkPlan {
  ChunkBitmap covered{};
  ChunkBitmap present{};
  uint64_t data_hash = 0;
};

/// Classifies the covered pages of `chunk` (bytes at `bytes`, chunk.pages
/// pages) into zero and present, and hashes the present ones for file `id`.
/// Covered pages outside `maybe_data` are known to be zero and never read
/// (reading an unpopulated memfd page would allocate it).
[[nodiscard]] ChunkPlan plan_chunk(const SnapshotId& id, const ChunkInfo& chunk,
                                   const uint8_t* bytes, const ChunkBitmap& covered,
                                   const ChunkBitmap& maybe_data);

/// Streams one memory file; chunks must be appended in order, all of them.
class MemoryFileBuilder {
 public:
  /// Creates "<path>.partial-<pid>" and positions it at the data area.
  [[nodiscard]] static Result<MemoryFileBuilder> create(const std::string& path,
                                                        MemoryFileKind kind, const SnapshotId& id,
                                                        const SnapshotId& parent,
                                                        std::span<const RegionSpec> regions);
  MemoryFileBuilder(MemoryFileBuilder&&) noexcept = default;
  MemoryFileBuilder& operator=(MemoryFileBuilder&&) = delete;
  MemoryFileBuilder(const MemoryFileBuilder&) = delete;
  MemoryFileBuilder& operator=(const MemoryFileBuilder&) = delete;
  /// Removes the temporary file unless finish() succeeded.
  ~MemoryFileBuilder();

  /// The chunk geometry of the regions given to create().
  [[nodiscard]] const ChunkLayout& layout() const { return layout_; }
  /// Appends the next chunk: its present pages are taken from `bytes` (the
  /// chunk's first page). When `bytes_reused` is true the bytes are written
  /// before returning (the caller reuses the buffer); otherwise they must
  /// stay valid and unchanged until finish().
  [[nodiscard]] Result<void> append_chunk(const ChunkPlan& plan, const uint8_t* bytes,
                                          bool bytes_reused);
  /// Writes the index and header, optionally fsyncs, and renames the file to
  /// its final path (fsyncing the directory too when `sync`).
  [[nodiscard]] Result<MemoryFileSummary> finish(bool sync);

 private:
  MemoryFileBuilder() = default;
  [[nodiscard]] Result<void> queue(const uint8_t* data, size_t len);
  [[nodiscard]] Result<void> flush();

  std::string path_;
  std::string temp_path_;
  UniqueFd fd_;
  bool finished_ = false;
  MemoryFileHeader header_;
  ChunkLayout layout_;
  std::vector<uint8_t> index_;
  size_t next_chunk_ = 0;
  uint64_t write_offset_ = 0;  ///< file offset of the next queued byte
  std::vector<iovec> pending_;
  uint64_t pending_bytes_ = 0;
};

}  // namespace godwit::snapshot
