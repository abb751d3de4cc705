// Writing guest memory to memory files: a full snapshot (every page, zero
// pages omitted) or a diff (only the pages of a PageSet). The guest must be
// paused: pages are scanned and hashed first (in parallel), then streamed to
// the file, and a page that changes in between makes the file fail its own
// checksum on load (detected, never silently wrong).
#pragma once

#include <string>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "snapshot/memory_file_builder.h"
#include "snapshot/page_set.h"

namespace godwit::snapshot {

/// How a memory file is written.
struct WriteOptions {
  unsigned hash_threads = 0;  ///< threads scanning and hashing chunks (0: up to 4, one per core)
  bool sync = true;           ///< fsync the file and its directory before returning
};

/// Writes every page of `memory` to `path` as a full snapshot with a fresh id.
[[nodiscard]] Result<MemoryFileSummary> write_full_memory(const GuestMemory& memory,
                                                          const std::string& path,
                                                          const WriteOptions& options = {});

/// Writes the pages of `pages` (zero pages as index bits only) to `path` as a
/// diff whose parent is `parent` (the id of the previous file of the chain).
/// `pages` must be defined over the layout of `memory`.
[[nodiscard]] Result<MemoryFileSummary> write_diff_memory(const GuestMemory& memory,
                                                          const PageSet& pages,
                                                          const std::string& path,
                                                          const SnapshotId& parent,
                                                          const WriteOptions& options = {});

/// Pages of chunk `chunk` (of `layout`, built over the same regions) in `pages`.
[[nodiscard]] ChunkBitmap chunk_bits(const PageSet& pages, const ChunkLayout& layout, size_t chunk);

}  // namespace godwit::snapshot
