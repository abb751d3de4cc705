// Merging a diff chain into one full memory file: the result holds exactly
// the memory that loading the chain gives, and carries the id of the chain's
// newest file, so diffs taken on top of that file apply to the merged file.
#pragma once

#include <span>
#include <string>

#include "base/result.h"
#include "snapshot/memory_writer.h"

namespace godwit::snapshot {

/// Writes the full snapshot equal to loading `chain` (base first) to
/// `out_path`. Every checksum of the chain is verified on the way; on any
/// error nothing is left at `out_path` (an existing file there is kept).
/// `out_path` may name a file of the chain (it is replaced atomically).
[[nodiscard]] Result<MemoryFileSummary> merge_memory_chain(std::span<const std::string> chain,
                                                           const std::string& out_path,
                                                           const WriteOptions& options = {});

/// merge_memory_chain of [base_path, diff_path].
[[nodiscard]] Result<MemoryFileSummary> merge_diff(const std::string& base_path,
                                                   const std::string& diff_path,
                                                   const std::string& out_path,
                                                   const WriteOptions& options = {});

}  // namespace godwit::snapshot
