// RamMigratable: guest RAM as one Migratable ("ram[0]", version 1), moved in
// precopy rounds while the guest runs and finished in stop-and-copy.
//
//   source                                            destination (fresh, zeroed RAM)
//   ------                                            -----------
//   [dirty tracking already on]
//   pending(estimate)  cached count, no collect (R12)
//   pending(exact)     collect dirty pages, count
//   save_iterate() ... one section of page runs ───▶  load(): validate every run, then write
//     ... repeated until converged ...
//   [VM stopped]
//   pending(final)     the last collect (R19, R20)
//   save_complete()    every pending page, no collect (R21) ───▶ load()
//   cleanup(success)   drop the page sets                 cleanup(success)
//
// Source state (created by the first source call, dropped by cleanup()):
// `pending`, the pages still to send, starts as every page of RAM (the first
// round) and grows with every collect from the DirtyPageSource; `sent_data`,
// the pages the destination may hold non-zero data for (sent as data and not
// zeroed since). A pending page that is zero is skipped when it is not in
// `sent_data` (the destination already has zero there), and is sent as a zero
// run when it is: a page the guest cleared after it was sent must arrive as
// zero. Pages never populated are known zero without being read: memfd holes
// (SEEK_DATA / SEEK_HOLE), so scanning never allocates them, and private
// anonymous pages neither present nor swapped (/proc/self/pagemap), so
// scanning does not fault in gigabytes of zero-page mappings.
//
// Reading pages the guest is still writing (precopy) is safe: the collect
// that put a page into `pending` ran before the page is read, so any guest or
// VMM write that lands during or after the read is in the next collect's
// epoch, puts the page back into `pending`, and the page is sent again; the
// VM is stopped before the final collect, after which nothing changes. So a
// torn or stale copy is always superseded before the destination runs. The
// same argument covers a zero check or a SEEK_DATA answer made stale by a
// write: it is used only within the save_iterate() call that made it.
//
// Payload layout (docs/state-format.md, section RAM), little-endian:
//   run count u32 | run x count
//   run: gpa u64 (page aligned) | pages u32 (>= 1) | kind u8 (0 zero, 1 data)
//        | pages x 4096 bytes of data (kind 1 only)
// A run covers contiguous pages of one RAM region, so a run of n pages costs
// 13 header bytes instead of 13 n.
//
// Thread safety: one migration thread calls everything; the guest and the
// VMM keep writing guest memory meanwhile (source), or nothing does (destination).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_memory.h"
#include "migration/migratable.h"
#include "snapshot/page_set.h"

namespace godwit::migration {

/// Where RAM's dirty pages come from. The VMM implements it with
/// KVM_GET_DIRTY_LOG of every slot plus the VMM-side bitmap
/// (PageSet::add_dirty_log, PageSet::take_vmm_dirty); tests use a fake.
/// Tracking must be on before the first save_iterate(): the first collect
/// must report every write since the RAM was first read.
class DirtyPageSource {
 public:
  virtual ~DirtyPageSource() = default;
  /// ORs every page written since the previous collect into `pages` (and
  /// starts a new epoch). A failure may have added some pages (a superset is safe).
  [[nodiscard]] virtual Result<void> collect(snapshot::PageSet& pages) = 0;
};

/// Limits of one save_iterate() call.
struct RamOptions {
  /// Payload bytes (headers and page data) written per save_iterate() call.
  /// At least one page is always sent, so values below 4096 + 17 mean one
  /// page per call.
  uint64_t max_iterate_bytes = 4 << 20;
  /// Guest bytes examined (zero-checked or copied) per save_iterate() call,
  /// which bounds the time of a call over mostly-zero RAM that sends little.
  /// memfd holes are skipped without reading and do not count.
  uint64_t max_scan_bytes = 64 << 20;
  /// Treat pages that were never populated (memfd holes, anonymous pages
  /// neither present nor swapped) as zero without reading them. Must be
  /// false while a userfaultfd lazy restore is still filling this RAM: its
  /// missing pages look unpopulated but are not zero.
  bool skip_unpopulated = true;
};

/// Pages chosen for one multifd packet (source): guest-physical addresses of
/// pages to send with their data, and of pages to send as zero.
struct PagePlan {
  std::vector<uint64_t> data;
  std::vector<uint64_t> zero;
  [[nodiscard]] size_t pages() const { return data.size() + zero.size(); }
  void clear() {
    data.clear();
    zero.clear();
  }
};

/// What the source has done since the last cleanup() (for statistics and tests).
struct RamSaveStats {
  uint64_t data_pages = 0;          ///< pages sent with their 4096 bytes
  uint64_t zero_pages = 0;          ///< pages sent as zero runs
  uint64_t skipped_zero_pages = 0;  ///< zero pages not sent (destination already zero)
  uint64_t collects = 0;            ///< DirtyPageSource::collect() calls
};

/// Guest RAM as a Migratable: precopy rounds from a dirty-page source,
/// stop-and-copy of the rest, and a validating loader.
class RamMigratable final : public Migratable {
 public:
  /// Section kind "ram".
  static constexpr const char* kKind = "ram";
  /// Payload layout version written (and the newest read).
  static constexpr uint32_t kVersion = 1;
  /// Oldest payload layout version read.
  static constexpr uint32_t kMinVersion = 1;
  /// Run kinds on the wire.
  static constexpr uint8_t kZeroRun = 0;
  static constexpr uint8_t kDataRun = 1;
  /// Bytes of a run header: gpa u64 | pages u32 | kind u8.
  static constexpr uint64_t kRunHeaderBytes = 13;

  /// RAM of `memory`; `dirty` is used by the source side only. Both must
  /// outlive this object.
  RamMigratable(GuestMemory& memory, DirtyPageSource& dirty, RamOptions options = {});

  [[nodiscard]] SectionKey key() const override { return {kKind, 0}; }
  [[nodiscard]] uint32_t version() const override { return kVersion; }
  [[nodiscard]] uint32_t min_version() const override { return kMinVersion; }

  /// Bytes of page data still pending (4096 per page, zero pages included, so
  /// an upper bound). Estimate: the cached count, no collect (R12). Exact:
  /// collects first, reports precopy_bytes. Final (VM stopped): collects
  /// first, reports the same as stopcopy_bytes; estimates after it do too.
  [[nodiscard]] Result<PendingData> pending(PendingQuery query) override;
  /// Writes runs of pending pages, within the RamOptions limits, removing them
  /// from the pending set; true when the pending set is empty. Never collects.
  [[nodiscard]] Result<bool> save_iterate(SectionWriter& out) override;
  /// Writes every pending page. Does not collect (R21): the final pending()
  /// query is the last collect, and save_complete() fails without one.
  [[nodiscard]] Result<void> save_complete(SectionWriter& out) override;
  /// Validates the whole payload (every run inside RAM, page aligned, known
  /// kind, its data present, nothing after the last run) before writing any
  /// byte, then writes the runs and marks them in the VMM dirty bitmap.
  [[nodiscard]] Result<void> load(SectionReader& in, uint32_t version) override;

  // --- multifd (migration/multifd.h): pages move as packets on parallel
  // channels instead of as sections; the planning, zero handling and
  // accounting are the same as save_iterate()'s.

  /// Source: picks up to `max_pages` pending pages (data and zero, within the
  /// scan budget) into `out` (cleared first), removing them from the pending
  /// set exactly as save_iterate() would send them; true when nothing is
  /// left pending. The data pages are read later, by copy_pages(): that is
  /// safe for the same reason save_iterate()'s read is (see the top of this
  /// file), because the read still happens after the collect that made them
  /// pending. After the final query it drains the stop-and-copy backlog.
  [[nodiscard]] Result<bool> plan_pages(uint64_t max_pages, PagePlan& out);
  /// Source: copies the pages at `gpas` into `out` (gpas.size() * 4096
  /// bytes), in order. Reads guest memory only; callable from any thread.
  [[nodiscard]] Result<void> copy_pages(std::span<const uint64_t> gpas,
                                        std::span<uint8_t> out) const;
  /// Destination: checks every address (page aligned, inside RAM) before
  /// writing anything, then writes the data pages (`data` holds them in
  /// order, 4096 bytes each), zeroes the zero pages, and marks both in the
  /// VMM dirty bitmap like load(). Callable from several threads at once for
  /// disjoint pages (the multifd rounds guarantee it).
  [[nodiscard]] Result<void> load_pages(std::span<const uint64_t> data_gpas,
                                        std::span<const uint8_t> data,
                                        std::span<const uint64_t> zero_gpas);

  /// Drops the source's page sets; the next source call starts a new first
  /// round against a new (zeroed) destination.
  [[nodiscard]] Result<void> cleanup(bool success) override;
  // postcopy_prepare() keeps the failing default: postcopy RAM (issues 5 and
  // 7) will override it to arm userfaultfd on the destination and report the
  // backlog as postcopy_bytes.

  /// Counters of the source side since the last cleanup().
  [[nodiscard]] const RamSaveStats& stats() const { return stats_; }

 private:
  /// One run planned for the payload.
  struct Run {
    uint64_t gpa;
    uint32_t pages;
    uint8_t kind;
  };
  /// One bit per page, per region (bit p of word p / 64 = page p), the
  /// layout of PageSet, which has no per-page removal.
  using RegionBits = std::vector<std::vector<uint64_t>>;
  /// Pages still to send, where the next call resumes, and what the
  /// destination holds.
  struct SourceState {
    SourceState(const GuestMemory& memory, bool skip_unpopulated);
    RegionBits pending;
    RegionBits sent_data;         ///< the destination may hold non-zero data there
    snapshot::PageSet collected;  ///< what DirtyPageSource::collect() fills, then ORed in
    UniqueFd pagemap;             ///< /proc/self/pagemap, for anonymous RAM
    /// Per region, pages known to hold data ([first, second)), kept across
    /// calls (see HoleFinder in the .cpp).
    std::vector<std::pair<uint64_t, uint64_t>> known_data;
    uint64_t pending_pages = 0;  ///< bits set in `pending`, kept up to date
    size_t cursor_region = 0;
    uint64_t cursor_page = 0;
    bool final_collected = false;  ///< pending(final) ran: the VM is stopped
  };
  /// Limits of one planning pass.
  struct Budget {
    uint64_t payload_bytes;
    uint64_t scan_pages;
    uint64_t max_pages = std::numeric_limits<uint64_t>::max();  ///< pages taken (data or zero)
  };

  /// The source state, created (every page pending) on first use.
  SourceState& source();
  /// Collects dirty pages into the pending set.
  [[nodiscard]] Result<void> collect();
  /// Picks runs of pending pages within `budget`, clears them from the
  /// pending set and updates sent_data and the stats.
  [[nodiscard]] std::vector<Run> plan(Budget budget);
  /// Writes `runs` (count, headers, page data) into `out`.
  [[nodiscard]] Result<void> emit(const std::vector<Run>& runs, SectionWriter& out) const;

  GuestMemory& memory_;
  DirtyPageSource& dirty_;
  RamOptions options_;
  std::optional<SourceState> source_;
  RamSaveStats stats_;
};

}  // namespace godwit::migration
