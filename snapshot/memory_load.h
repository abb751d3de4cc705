// Eager restore of guest memory from a chain of memory files, and the
// data-only verification of a chain.
//
// Guarantees on failure:
//  - open/metadata errors (missing file, bad magic or version, header,
//    region table or index checksum, truncation, trailing bytes, wrong parent,
//    wrong order, region layout not matching the destination) are found
//    before any guest byte is written: the destination is untouched;
//  - a page-data checksum error is found chunk by chunk while loading: the
//    error says the destination is partially written, unless
//    LoadOptions::verify_first was set (then every checksum is checked
//    before the first write and the destination is untouched).
// The files are opened read-only and never modified.
#pragma once

#include <span>
#include <string>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "snapshot/memory_image.h"

namespace godwit::snapshot {

/// How load_memory works.
struct LoadOptions {
  unsigned threads = 0;       ///< loader threads (0: up to 4, one per core)
  bool verify_first = false;  ///< verify every checksum before writing guest memory
};

/// What load_memory did.
struct LoadSummary {
  uint64_t data_pages = 0;  ///< pages copied from files into guest memory
  uint64_t zero_pages = 0;  ///< pages made zero (discarded, not written)
  size_t files = 0;         ///< files in the chain
};

/// Loads `chain` (full base first, then diffs in order) into `memory`, whose
/// region layout must equal the snapshot's. Every page gets the content of
/// the newest file covering it and is written exactly once; zero pages are
/// discarded (MADV_DONTNEED / hole punch) rather than written, so a sparse
/// snapshot stays sparse in RAM.
[[nodiscard]] Result<LoadSummary> load_memory(std::span<const std::string> chain,
                                              GuestMemory& memory, const LoadOptions& options = {});
/// load_memory of a chain already opened (and its metadata verified) as `image`.
[[nodiscard]] Result<LoadSummary> load_memory(const MemoryImage& image, GuestMemory& memory,
                                              const LoadOptions& options = {});

/// Opens `chain` and verifies every file's metadata and every data checksum.
[[nodiscard]] Result<void> verify_memory_chain(std::span<const std::string> chain);

}  // namespace godwit::snapshot
