// write_full_memory / write_diff_memory: plan every chunk in parallel (zero
// detection + XXH3), then stream the present pages straight from guest RAM.
#include "snapshot/memory_writer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

namespace godwit::snapshot {
namespace {

unsigned planning_threads(unsigned requested) {
  if (requested > 0) return requested;
  return std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
}

const uint8_t* chunk_bytes(const GuestMemory& memory, const ChunkInfo& chunk) {
  const MemoryRegion& region = memory.regions()[chunk.region];
  return region.host + (chunk.gpa - region.gpa);
}

// Pages of `region` that may hold data, one bit per page (region order).
// For an fd-backed region the holes of the file (SEEK_DATA / SEEK_HOLE) are
// zero and left out, so scanning never faults in, and thereby allocates,
// memory the guest never touched. Anonymous regions: every page.
std::vector<uint64_t> populated_pages(const MemoryRegion& region) {
  uint64_t pages = region.size / kPageSize;
  std::vector<uint64_t> bits((pages + 63) / 64, ~uint64_t{0});
  if (region.fd < 0) return bits;
  std::vector<uint64_t> found(bits.size(), 0);
  auto start = static_cast<off_t>(region.fd_offset);
  auto end = static_cast<off_t>(region.fd_offset + region.size);
  for (off_t at = start; at < end;) {
    off_t data = ::lseek(region.fd, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // no data after `at`
    if (data < 0) return bits;              // SEEK_DATA unsupported: scan everything
    if (data >= end) break;
    off_t hole = ::lseek(region.fd, data, SEEK_HOLE);
    if (hole < 0) return bits;
    hole = std::min(hole, end);
    uint64_t first = static_cast<uint64_t>(data - start) / kPageSize;
    uint64_t last = (static_cast<uint64_t>(hole - start) + kPageSize - 1) / kPageSize;
    for (uint64_t p = first; p < last; ++p) found[p / 64] |= uint64_t{1} << (p % 64);
    at = hole;
  }
  return found;
}

// Bits of `words` (a region page bitmap) for chunk `chunk`, limited to its pages.
ChunkBitmap chunk_slice(std::span<const uint64_t> words, const ChunkLayout& layout, size_t chunk) {
  const ChunkInfo& info = layout[chunk];
  uint64_t first_word = (info.gpa - layout.regions()[info.region].gpa) / kPageSize / 64;
  ChunkBitmap bits{};
  for (size_t w = 0; w < kChunkBitmapWords && first_word + w < words.size(); ++w)
    bits[w] = words[first_word + w];
  ChunkBitmap valid = bits_first(info.pages);
  for (size_t w = 0; w < kChunkBitmapWords; ++w) bits[w] &= valid[w];
  return bits;
}

// Writes one file of `kind` whose covered pages are `covered_of(chunk)`.
template <typename CoveredOf>
Result<MemoryFileSummary> write_memory_file(const GuestMemory& memory, const std::string& path,
                                            MemoryFileKind kind, const SnapshotId& parent,
                                            const WriteOptions& options, CoveredOf covered_of) {
  SnapshotId id = TRY(SnapshotId::generate());
  std::vector<RegionSpec> specs = memory.layout();
  MemoryFileBuilder builder = TRY(MemoryFileBuilder::create(path, kind, id, parent, specs));
  const ChunkLayout& layout = builder.layout();

  // Phase 1: classify and hash chunks, spread over threads by an atomic cursor.
  std::vector<std::vector<uint64_t>> populated;
  for (const MemoryRegion& region : memory.regions()) populated.push_back(populated_pages(region));
  std::vector<ChunkPlan> plans(layout.size());
  std::atomic<size_t> cursor{0};
  auto worker = [&] {
    for (size_t c = cursor.fetch_add(1); c < layout.size(); c = cursor.fetch_add(1)) {
      ChunkBitmap covered = covered_of(c);
      ChunkBitmap maybe_data = chunk_slice(populated[layout[c].region], layout, c);
      plans[c] = plan_chunk(id, layout[c], chunk_bytes(memory, layout[c]), covered, maybe_data);
    }
  };
  std::vector<std::jthread> threads;
  for (unsigned t = 1; t < planning_threads(options.hash_threads); ++t)
    threads.emplace_back(worker);
  worker();
  threads.clear();  // joins

  // Phase 2: one sequential stream of large writes.
  for (size_t c = 0; c < layout.size(); ++c)
    TRY_VOID(builder.append_chunk(plans[c], chunk_bytes(memory, layout[c]), false));
  return builder.finish(options.sync);
}

}  // namespace

ChunkBitmap chunk_bits(const PageSet& pages, const ChunkLayout& layout, size_t chunk) {
  return chunk_slice(pages.words(layout[chunk].region), layout, chunk);
}

Result<MemoryFileSummary> write_full_memory(const GuestMemory& memory, const std::string& path,
                                            const WriteOptions& options) {
  ChunkLayout layout(memory.layout());
  auto result = write_memory_file(memory, path, MemoryFileKind::full, SnapshotId{}, options,
                                  [&](size_t c) { return bits_first(layout[c].pages); });
  if (!result) return fail(result.error().context("full memory snapshot to " + path));
  return result;
}

Result<MemoryFileSummary> write_diff_memory(const GuestMemory& memory, const PageSet& pages,
                                            const std::string& path, const SnapshotId& parent,
                                            const WriteOptions& options) {
  std::vector<RegionSpec> specs = memory.layout();
  if (!same_regions(pages.regions(), specs))
    return fail("diff memory snapshot to " + path + ": page set over " +
                describe_regions(pages.regions()) + " does not match guest memory " +
                describe_regions(specs));
  if (parent.is_zero())
    return fail("diff memory snapshot to " + path +
                ": the parent id is zero (a diff needs the id "
                "of the snapshot it follows)");
  ChunkLayout layout(specs);
  auto result = write_memory_file(memory, path, MemoryFileKind::diff, parent, options,
                                  [&](size_t c) { return chunk_bits(pages, layout, c); });
  if (!result) return fail(result.error().context("diff memory snapshot to " + path));
  return result;
}

}  // namespace godwit::snapshot
