// merge_memory_chain: materialize each chunk of the chain (verified), then
// re-plan it as a full chunk (zero pages dropped) and append it.
#include "snapshot/memory_merge.h"

#include "snapshot/memory_image.h"

namespace godwit::snapshot {

Result<MemoryFileSummary> merge_memory_chain(std::span<const std::string> chain,
                                             const std::string& out_path,
                                             const WriteOptions& options) {
  auto merged = [&]() -> Result<MemoryFileSummary> {
    MemoryImage image = TRY(MemoryImage::open(chain));
    std::vector<RegionSpec> regions(image.regions().begin(), image.regions().end());
    MemoryFileBuilder builder = TRY(MemoryFileBuilder::create(out_path, MemoryFileKind::full,
                                                              image.id(), SnapshotId{}, regions));
    std::vector<uint8_t> buffer(kChunkBytes);
    for (size_t c = 0; c < image.layout().size(); ++c) {
      const ChunkInfo& info = image.layout()[c];
      std::span<uint8_t> bytes(buffer.data(), uint64_t{info.pages} * kPageSize);
      TRY_VOID(image.read_chunk(c, bytes));
      ChunkPlan plan = plan_chunk(image.id(), info, bytes.data(), bits_first(info.pages),
                                  bits_first(info.pages));
      TRY_VOID(builder.append_chunk(plan, bytes.data(), true));
    }
    return builder.finish(options.sync);
  }();
  if (!merged) return fail(merged.error().context("merge memory snapshots into " + out_path));
  return merged;
}

Result<MemoryFileSummary> merge_diff(const std::string& base_path, const std::string& diff_path,
                                     const std::string& out_path, const WriteOptions& options) {
  const std::string chain[] = {base_path, diff_path};
  return merge_memory_chain(chain, out_path, options);
}

}  // namespace godwit::snapshot
