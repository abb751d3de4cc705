// RamMigratable: the page walk that plans runs of pending pages, the payload
// writer, and the two-pass (validate, then write) loader.
#include "migration/ram_migratable.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include "snapshot/memory_file_format.h"

namespace godwit::migration {
namespace {

using snapshot::hex_u64;

uint64_t region_pages(const MemoryRegion& r) { return r.size / kPageSize; }

RegionSpec spec_of(const MemoryRegion& r) { return {r.gpa, r.size}; }

std::string describe_ram(const GuestMemory& memory) {
  std::vector<RegionSpec> specs;
  for (const MemoryRegion& r : memory.regions()) specs.push_back(spec_of(r));
  return snapshot::describe_regions(specs);
}

/// Which pages of one region were never populated, and so are zero without
/// being read: holes of the backing file for memfd / hugetlbfs regions
/// (SEEK_DATA / SEEK_HOLE), pages neither present nor swapped for private
/// anonymous regions (/proc/self/pagemap). Reading such a page would fault it
/// in (and allocate it, for a memfd). Answers are cached as the extent around
/// the last page asked about. An answer may be stale as soon as it is given
/// (the guest may populate the page); that is safe for the same reason as
/// reading a page being written (see the header), as long as the cache lives
/// no longer than one save_iterate() call. A "data" answer may live longer
/// (`known_data`, kept across calls): a stale one only makes us read a page
/// that is a hole again, never skip one that holds data. Without it, every
/// call would SEEK_HOLE across the same long data run again (the kernel
/// walks the run page by page: quadratic over a large populated RAM).
class HoleFinder {
 public:
  /// `pagemap` is an open /proc/self/pagemap for anonymous regions, or -1;
  /// `enabled` false reports no holes at all; `known_data` is the region's
  /// data extent learned by earlier calls ([first, second) pages).
  HoleFinder(const MemoryRegion& region, int pagemap, bool enabled,
             std::pair<uint64_t, uint64_t>& known_data)
      : region_(region), pagemap_(pagemap), enabled_(enabled), known_data_(known_data) {}

  /// True when page `p` was never populated.
  bool is_hole(uint64_t p) {
    if (p >= known_data_.first && p < known_data_.second) return false;
    if (p < begin_ || p >= end_) {
      if (!enabled_)
        set_extent(0, region_pages(region_), false);
      else if (region_.fd >= 0)
        find_file_extent(p);
      else if (pagemap_ >= 0)
        find_pagemap_extent(p);
      else
        set_extent(0, region_pages(region_), false);  // unknown: read every page
    }
    return hole_;
  }

 private:
  void set_extent(uint64_t begin, uint64_t end, bool hole) {
    begin_ = begin;
    end_ = end;
    hole_ = hole;
  }

  void find_file_extent(uint64_t p) {
    const uint64_t pages = region_pages(region_);
    const auto base = static_cast<off_t>(region_.fd_offset);
    off_t data = ::lseek(region_.fd, base + static_cast<off_t>(p * kPageSize), SEEK_DATA);
    if (data < 0) {
      // ENXIO: no data after p. Anything else (SEEK_DATA unsupported): read every page.
      if (errno == ENXIO)
        set_extent(p, pages, true);
      else
        set_extent(0, pages, false);
      return;
    }
    uint64_t data_page = static_cast<uint64_t>(data - base) / kPageSize;
    if (data_page > p) return set_extent(p, std::min(data_page, pages), true);
    off_t hole = ::lseek(region_.fd, data, SEEK_HOLE);
    uint64_t hole_page =
        hole < 0 ? pages : (static_cast<uint64_t>(hole - base) + kPageSize - 1) / kPageSize;
    set_extent(p, std::clamp(hole_page, p + 1, pages), false);
    known_data_ = {begin_, end_};
  }

  // One pagemap entry (u64) per virtual page: bit 63 present, bit 62
  // swapped. A private anonymous page with neither was never written (or
  // was discarded), so it reads as zero.
  void find_pagemap_extent(uint64_t p) {
    constexpr uint64_t kPresent = uint64_t{1} << 63;
    constexpr uint64_t kSwapped = uint64_t{1} << 62;
    const uint64_t pages = region_pages(region_);
    std::array<uint64_t, 512> entries;
    const uint64_t n = std::min<uint64_t>(entries.size(), pages - p);
    const uint64_t vpn = (reinterpret_cast<uintptr_t>(region_.host) / kPageSize) + p;
    ssize_t got = ::pread(pagemap_, entries.data(), n * 8, static_cast<off_t>(vpn * 8));
    if (got < 8) return set_extent(0, pages, false);  // unreadable: read every page
    const uint64_t valid = static_cast<uint64_t>(got) / 8;
    const bool hole = (entries[0] & (kPresent | kSwapped)) == 0;
    uint64_t k = 1;
    while (k < valid && ((entries[k] & (kPresent | kSwapped)) == 0) == hole) ++k;
    set_extent(p, p + k, hole);
  }

  const MemoryRegion& region_;
  int pagemap_;
  bool enabled_;
  std::pair<uint64_t, uint64_t>& known_data_;
  uint64_t begin_ = 0;
  uint64_t end_ = 0;  ///< [begin_, end_) is known; empty at first
  bool hole_ = false;
};

bool test_bit(const std::vector<uint64_t>& words, uint64_t p) {
  return (words[p / 64] >> (p % 64)) & 1;
}
void set_bit(std::vector<uint64_t>& words, uint64_t p) { words[p / 64] |= uint64_t{1} << (p % 64); }
void clear_bit(std::vector<uint64_t>& words, uint64_t p) {
  words[p / 64] &= ~(uint64_t{1} << (p % 64));
}

}  // namespace

RamMigratable::SourceState::SourceState(const GuestMemory& memory, bool skip_unpopulated)
    : collected(snapshot::PageSet::for_memory(memory)) {
  if (skip_unpopulated && memory.backing() == MemoryBacking::anonymous)
    pagemap = UniqueFd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));  // -1: read every page
  // The first round: every page, which the destination holds as zero.
  for (const MemoryRegion& r : memory.regions()) {
    uint64_t pages = region_pages(r);
    std::vector<uint64_t> all((pages + 63) / 64, ~uint64_t{0});
    if (pages % 64 != 0) all.back() = (uint64_t{1} << (pages % 64)) - 1;
    pending.push_back(std::move(all));
    known_data.emplace_back(0, 0);
    sent_data.emplace_back((pages + 63) / 64, 0);
    pending_pages += pages;
  }
}

RamMigratable::RamMigratable(GuestMemory& memory, DirtyPageSource& dirty, RamOptions options)
    : memory_(memory), dirty_(dirty), options_(options) {
  options_.max_scan_bytes = std::max(options_.max_scan_bytes, kPageSize);
}

RamMigratable::SourceState& RamMigratable::source() {
  if (!source_) source_.emplace(memory_, options_.skip_unpopulated);
  return *source_;
}

Result<void> RamMigratable::collect() {
  SourceState& s = source();
  s.collected.clear();
  ++stats_.collects;
  auto collected = dirty_.collect(s.collected);
  // OR in whatever was taken even on failure: the source has already
  // started a new epoch for it, so dropping it would lose those pages.
  s.pending_pages = 0;
  for (uint32_t r = 0; r < s.pending.size(); ++r) {
    std::span<const uint64_t> words = s.collected.words(r);
    for (size_t w = 0; w < s.pending[r].size(); ++w) {
      s.pending[r][w] |= words[w];
      s.pending_pages += std::popcount(s.pending[r][w]);
    }
  }
  if (!collected) return fail(collected.error().context(key().name() + ": collecting dirty pages"));
  return {};
}

Result<PendingData> RamMigratable::pending(PendingQuery query) {
  SourceState& s = source();
  if (query != PendingQuery::estimate) TRY_VOID(collect());
  if (query == PendingQuery::final) s.final_collected = true;
  uint64_t bytes = s.pending_pages * kPageSize;
  // Once the VM is stopped nothing of RAM can move in precopy any more.
  if (s.final_collected) return PendingData{.stopcopy_bytes = bytes};
  return PendingData{.precopy_bytes = bytes};
}

std::vector<RamMigratable::Run> RamMigratable::plan(Budget budget) {
  SourceState& s = *source_;
  std::span<const MemoryRegion> regions = memory_.regions();
  std::vector<Run> runs;
  uint64_t payload = 4;  // run count
  uint64_t scanned = 0;
  uint64_t taken = 0;
  const size_t n = regions.size();
  // Regions in order from the cursor, wrapping around to just before it, so
  // pages re-dirtied behind the cursor cannot starve those ahead of it.
  for (size_t step = 0; step <= n; ++step) {
    const size_t r = (s.cursor_region + step) % n;
    const MemoryRegion& region = regions[r];
    const uint64_t from = step == 0 ? s.cursor_page : 0;
    const uint64_t to = step == n ? s.cursor_page : region_pages(region);
    if (from >= to) continue;
    HoleFinder holes(region, s.pagemap.get(), options_.skip_unpopulated, s.known_data[r]);
    // Runs never cross regions: the loader writes each through one mapping.
    const size_t region_first_run = runs.size();
    std::vector<uint64_t>& pending = s.pending[r];
    std::vector<uint64_t>& sent = s.sent_data[r];
    for (uint64_t w = from / 64; w <= (to - 1) / 64; ++w) {
      uint64_t bits = pending[w];
      if (w == from / 64) bits &= ~uint64_t{0} << (from % 64);
      if (w == (to - 1) / 64 && to % 64 != 0) bits &= (uint64_t{1} << (to % 64)) - 1;
      for (; bits != 0; bits &= bits - 1) {
        const uint64_t p = w * 64 + std::countr_zero(bits);
        const uint64_t gpa = region.gpa + p * kPageSize;
        const bool hole = holes.is_hole(p);
        if (!hole && scanned >= budget.scan_pages) {
          s.cursor_region = r;
          s.cursor_page = p;
          return runs;
        }
        const bool zero = hole || snapshot::page_is_zero(region.host + p * kPageSize);
        if (!hole) ++scanned;
        if (zero && !test_bit(sent, p)) {
          clear_bit(pending, p);  // the destination already holds zero
          --s.pending_pages;
          ++stats_.skipped_zero_pages;
          continue;
        }
        const uint8_t kind = zero ? kZeroRun : kDataRun;
        Run* open = runs.size() > region_first_run ? &runs.back() : nullptr;
        const bool extends = open != nullptr && open->kind == kind &&
                             open->gpa + uint64_t{open->pages} * kPageSize == gpa &&
                             open->pages < std::numeric_limits<uint32_t>::max();
        const uint64_t cost = (extends ? 0 : kRunHeaderBytes) + (zero ? 0 : kPageSize);
        if ((payload + cost > budget.payload_bytes && !runs.empty()) || taken >= budget.max_pages) {
          s.cursor_region = r;
          s.cursor_page = p;
          return runs;
        }
        payload += cost;
        ++taken;
        clear_bit(pending, p);
        --s.pending_pages;
        if (zero) {
          clear_bit(sent, p);
          ++stats_.zero_pages;
        } else {
          set_bit(sent, p);
          ++stats_.data_pages;
        }
        if (extends)
          ++open->pages;
        else
          runs.push_back({gpa, 1, kind});
      }
    }
  }
  return runs;
}

Result<void> RamMigratable::emit(const std::vector<Run>& runs, SectionWriter& out) const {
  if (runs.size() > std::numeric_limits<uint32_t>::max())
    return fail(key().name() + ": " + std::to_string(runs.size()) + " runs do not fit one payload");
  out.u32(static_cast<uint32_t>(runs.size()));
  for (const Run& run : runs) {
    out.u64(run.gpa);
    out.u32(run.pages);
    out.u8(run.kind);
    if (run.kind == kDataRun) {
      // Copied straight from guest memory; the guest may be writing it (see header).
      std::span<uint8_t> data = TRY(memory_.host_span(run.gpa, uint64_t{run.pages} * kPageSize));
      out.raw(data);
    }
  }
  return out.status();
}

Result<bool> RamMigratable::save_iterate(SectionWriter& out) {
  SourceState& s = source();
  std::vector<Run> runs = plan({.payload_bytes = options_.max_iterate_bytes,
                                .scan_pages = options_.max_scan_bytes / kPageSize});
  TRY_VOID(emit(runs, out));
  return s.pending_pages == 0;
}

Result<void> RamMigratable::save_complete(SectionWriter& out) {
  if (!source_ || !source_->final_collected)
    return fail(key().name() +
                ": save_complete without the final pending query: the pages written since the "
                "last collect would be lost (the final query is RAM's last dirty-page collect)");
  std::vector<Run> runs = plan({.payload_bytes = std::numeric_limits<uint64_t>::max(),
                                .scan_pages = std::numeric_limits<uint64_t>::max()});
  return emit(runs, out);
}

Result<bool> RamMigratable::plan_pages(uint64_t max_pages, PagePlan& out) {
  out.clear();
  SourceState& s = source();
  const std::vector<Run> runs = plan({.payload_bytes = std::numeric_limits<uint64_t>::max(),
                                      .scan_pages = options_.max_scan_bytes / kPageSize,
                                      .max_pages = std::max<uint64_t>(max_pages, 1)});
  for (const Run& run : runs) {
    std::vector<uint64_t>& list = run.kind == kDataRun ? out.data : out.zero;
    for (uint32_t p = 0; p < run.pages; ++p) list.push_back(run.gpa + uint64_t{p} * kPageSize);
  }
  return s.pending_pages == 0;
}

Result<void> RamMigratable::copy_pages(std::span<const uint64_t> gpas,
                                       std::span<uint8_t> out) const {
  if (out.size() != gpas.size() * kPageSize)
    return fail(key().name() + ": copy_pages of " + std::to_string(gpas.size()) + " pages into " +
                std::to_string(out.size()) + " bytes");
  for (size_t i = 0; i < gpas.size(); ++i) {
    // Copied while the guest may write it (see the top of this file).
    std::span<uint8_t> page = TRY(memory_.host_span(gpas[i], kPageSize));
    std::memcpy(out.data() + i * kPageSize, page.data(), kPageSize);
  }
  return {};
}

Result<void> RamMigratable::load_pages(std::span<const uint64_t> data_gpas,
                                       std::span<const uint8_t> data,
                                       std::span<const uint64_t> zero_gpas) {
  if (data.size() != data_gpas.size() * kPageSize)
    return fail(key().name() + ": " + std::to_string(data_gpas.size()) + " data pages but " +
                std::to_string(data.size()) + " bytes of page data");
  // Every address first, so a bad packet leaves RAM as it was.
  for (std::span<const uint64_t> list : {data_gpas, zero_gpas}) {
    for (uint64_t gpa : list) {
      const MemoryRegion* region = memory_.find_region(gpa);
      if (gpa % kPageSize != 0 || region == nullptr || !region->contains(gpa, kPageSize))
        return fail(key().name() + ": page " + hex_u64(gpa) +
                    (gpa % kPageSize != 0 ? " is not page aligned"
                                          : " is outside guest RAM " + describe_ram(memory_)));
    }
  }
  for (size_t i = 0; i < data_gpas.size(); ++i) {
    std::span<uint8_t> target = TRY(memory_.host_span(data_gpas[i], kPageSize));
    std::memcpy(target.data(), data.data() + i * kPageSize, kPageSize);
    memory_.mark_dirty(data_gpas[i], kPageSize);
  }
  for (uint64_t gpa : zero_gpas) {
    std::span<uint8_t> target = TRY(memory_.host_span(gpa, kPageSize));
    std::memset(target.data(), 0, kPageSize);
    memory_.mark_dirty(gpa, kPageSize);
  }
  return {};
}

Result<void> RamMigratable::load(SectionReader& in, uint32_t version) {
  if (version < kMinVersion || version > kVersion)
    return fail(key().name() + ": version " + std::to_string(version) +
                " is not supported (this loader reads versions " + std::to_string(kMinVersion) +
                ".." + std::to_string(kVersion) + ")");

  // Pass 1, on a copy of the reader: check every run before any byte of
  // guest memory changes, so a corrupt section leaves RAM as it was.
  // (SectionReader has no skip, so page data is read into a scratch page.)
  SectionReader check = in;
  const uint32_t count = TRY(check.count(kRunHeaderBytes, "RAM runs"));
  std::array<uint8_t, kPageSize> scratch;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t at = check.offset();
    const uint64_t gpa = TRY(check.u64());
    const uint32_t pages = TRY(check.u32());
    const uint8_t kind = TRY(check.u8());
    const std::string run = "run " + std::to_string(i) + " (gpa " + hex_u64(gpa) + ", " +
                            std::to_string(pages) + " pages): ";
    if (gpa % kPageSize != 0) return check.error_at(at, run + "gpa is not page aligned");
    if (pages == 0) return check.error_at(at + 8, run + "a run must cover at least one page");
    if (kind != kZeroRun && kind != kDataRun)
      return check.error_at(
          at + 12, run + "unknown kind " + std::to_string(kind) + " (0 = zero pages, 1 = data)");
    const uint64_t len = uint64_t{pages} * kPageSize;
    const MemoryRegion* region = memory_.find_region(gpa);
    if (region == nullptr || !region->contains(gpa, len))
      return check.error_at(at, run + "outside guest RAM " + describe_ram(memory_) +
                                    " (a run must lie in one region)");
    if (kind == kDataRun) {
      if (check.remaining() < len)
        return check.error(run + "needs " + std::to_string(len) + " bytes of page data but only " +
                           std::to_string(check.remaining()) + " are left");
      for (uint32_t p = 0; p < pages; ++p) TRY_VOID(check.raw(scratch));
    }
  }
  TRY_VOID(check.expect_end());

  // Pass 2: the same fields again, now written. Loaded pages are marked in
  // the VMM dirty bitmap like every VMM write: if a dirty epoch is open on
  // this VM (a diff snapshot baseline), the new contents must be in it; when
  // none is, the next epoch starts by discarding the bitmap, so marking costs
  // one atomic OR per 64 pages.
  TRY(in.u32());
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t gpa = TRY(in.u64());
    const uint32_t pages = TRY(in.u32());
    const uint8_t kind = TRY(in.u8());
    const uint64_t len = uint64_t{pages} * kPageSize;
    std::span<uint8_t> target = TRY(memory_.host_span(gpa, len));
    if (kind == kDataRun)
      TRY_VOID(in.raw(target));
    else
      std::memset(target.data(), 0, target.size());
    memory_.mark_dirty(gpa, len);
  }
  return in.expect_end();
}

Result<void> RamMigratable::cleanup(bool /*success*/) {
  // Either way the page sets describe a destination that is gone: a new
  // migration starts over from a first round against fresh, zeroed RAM.
  source_.reset();
  stats_ = {};
  return {};
}

}  // namespace godwit::migration
