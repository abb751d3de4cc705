// load_memory: every (file, chunk) pair is one work item; each page is read
// (preadv straight into guest RAM) only from the newest file covering it, so
// work items never overlap and run in parallel in any order.
#include "snapshot/memory_load.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "snapshot/memory_image.h"

namespace godwit::snapshot {
namespace {

// Makes [offset, offset+len) of region `r` zero without touching it when the
// backing allows: discarding anonymous pages or punching a hole in the memfd
// keeps untouched memory unallocated. Falls back to memset.
void discard_pages(const GuestMemory& memory, const MemoryRegion& r, uint64_t offset,
                   uint64_t len) {
  if (memory.backing() == MemoryBacking::anonymous) {
    if (::madvise(r.host + offset, len, MADV_DONTNEED) == 0) return;
  } else if (memory.backing() == MemoryBacking::memfd && r.fd >= 0) {
    if (::fallocate(r.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(r.fd_offset + offset), static_cast<off_t>(len)) == 0)
      return;
  }
  std::memset(r.host + offset, 0, len);
}

struct WorkItem {
  size_t file;
  size_t chunk;
};

// Loads the pages of `chunk` owned by file `f`; superseded data pages are
// read into `scratch` so the file's checksum can still be verified.
Result<void> load_item(const MemoryImage& image, GuestMemory& memory, const WorkItem& item,
                       std::span<uint8_t> scratch, LoadSummary& counts) {
  const MemoryFile& file = image.file(item.file);
  const ChunkEntry& entry = file.chunk(item.chunk);
  const ChunkInfo& info = image.layout()[item.chunk];
  const MemoryRegion& region = memory.regions()[info.region];
  uint64_t chunk_offset = info.gpa - region.gpa;
  std::vector<uint8_t*> targets;
  targets.reserve(entry.data_pages);
  constexpr uint32_t kNoRun = UINT32_MAX;
  uint32_t zero_run = kNoRun;  // first page of the current run of owned zero pages
  auto end_zero_run = [&](uint32_t end) {
    if (zero_run == kNoRun) return;
    discard_pages(memory, region, chunk_offset + uint64_t{zero_run} * kPageSize,
                  uint64_t{end - zero_run} * kPageSize);
    counts.zero_pages += end - zero_run;
    zero_run = kNoRun;
  };
  for (uint32_t p = 0; p < info.pages; ++p) {
    bool owned = bit_test(entry.covered, p) && image.owner(item.chunk, p) == item.file;
    bool present = bit_test(entry.present, p);
    if (owned && !present) {
      if (zero_run == kNoRun) zero_run = p;
      continue;
    }
    end_zero_run(p);
    if (!present) continue;
    if (owned) {
      targets.push_back(region.host + chunk_offset + uint64_t{p} * kPageSize);
      ++counts.data_pages;
    } else {
      targets.push_back(scratch.data() + uint64_t{p} * kPageSize);
    }
  }
  end_zero_run(info.pages);
  return file.read_chunk_data(item.chunk, targets);
}

unsigned loader_threads(unsigned requested) {
  if (requested > 0) return requested;
  return std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
}

}  // namespace

Result<LoadSummary> load_memory(std::span<const std::string> chain, GuestMemory& memory,
                                const LoadOptions& options) {
  MemoryImage image = TRY(MemoryImage::open(chain));
  return load_memory(image, memory, options);
}

Result<LoadSummary> load_memory(const MemoryImage& image, GuestMemory& memory,
                                const LoadOptions& options) {
  TRY_VOID(image.check_layout(memory.layout()));
  if (options.verify_first) TRY_VOID(image.verify_all());

  std::vector<WorkItem> items;
  for (size_t f = 0; f < image.file_count(); ++f)
    for (size_t c = 0; c < image.layout().size(); ++c)
      if (image.file(f).chunk(c).covered_count > 0) items.push_back({f, c});

  std::atomic<size_t> cursor{0};
  std::atomic<bool> failed{false};
  std::mutex lock;
  std::optional<Error> first_error;
  LoadSummary total;
  total.files = image.file_count();
  auto worker = [&] {
    std::vector<uint8_t> scratch(kChunkBytes);
    LoadSummary counts;
    for (size_t i = cursor.fetch_add(1); i < items.size() && !failed; i = cursor.fetch_add(1)) {
      auto done = load_item(image, memory, items[i], scratch, counts);
      if (!done) {
        failed = true;
        std::lock_guard guard(lock);
        if (!first_error) first_error = done.error();
      }
    }
    std::lock_guard guard(lock);
    total.data_pages += counts.data_pages;
    total.zero_pages += counts.zero_pages;
  };
  {
    std::vector<std::jthread> threads;
    for (unsigned t = 1; t < loader_threads(options.threads); ++t) threads.emplace_back(worker);
    worker();
  }
  if (first_error)
    return fail(Error{first_error->message +
                          "; the destination guest memory is partially written and must not run",
                      first_error->code});
  return total;
}

Result<void> verify_memory_chain(std::span<const std::string> chain) {
  MemoryImage image = TRY(MemoryImage::open(chain));
  return image.verify_all();
}

}  // namespace godwit::snapshot
