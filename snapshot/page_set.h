// PageSet: the pages a diff snapshot must hold, one bitmap per RAM region in
// the KVM dirty-log layout (bit p of word p / 64 = page p of the slot), so the
// integration ORs both dirty sources into it: KVM_GET_DIRTY_LOG of each slot
// (pages the guest wrote) and the VMM-side DirtyBitmap of each region (pages
// the VMM wrote, which KVM never reports).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::snapshot {

/// A set of guest pages over a fixed region layout.
class PageSet {
 public:
  /// An empty set over `regions` (region index == KVM slot number).
  explicit PageSet(std::span<const RegionSpec> regions);
  /// An empty set over the regions of `memory`.
  [[nodiscard]] static PageSet for_memory(const GuestMemory& memory);

  /// The region layout the set is defined over.
  [[nodiscard]] std::span<const RegionSpec> regions() const { return regions_; }
  /// Adds every page touching [gpa, gpa+len); fails (adding nothing) if any
  /// byte lies outside the regions.
  [[nodiscard]] Result<void> add_range(uint64_t gpa, uint64_t len);
  /// ORs a KVM dirty-log bitmap of `slot` into the set; fails when the slot
  /// does not exist or the bitmap has fewer words than the slot needs.
  [[nodiscard]] Result<void> add_dirty_log(uint32_t slot, std::span<const uint64_t> bitmap);
  /// Atomically takes (reads and clears) the VMM-side dirty bits of region
  /// `region` and ORs them in; fails on a size mismatch (nothing taken then).
  [[nodiscard]] Result<void> take_vmm_dirty(uint32_t region, DirtyBitmap& vmm_dirty);
  /// take_vmm_dirty for every region of `memory`, whose layout must match.
  [[nodiscard]] Result<void> take_vmm_dirty(GuestMemory& memory);
  /// ORs another set over the same layout into this one.
  [[nodiscard]] Result<void> add_set(const PageSet& other);
  /// Adds every page of every region.
  void add_all();
  /// Empties the set.
  void clear();

  /// True when the page holding `gpa` is in the set (false outside RAM).
  [[nodiscard]] bool contains(uint64_t gpa) const;
  /// The bitmap words of region `region`.
  [[nodiscard]] std::span<const uint64_t> words(uint32_t region) const { return words_[region]; }
  /// Number of pages in the set.
  [[nodiscard]] uint64_t count() const;

 private:
  std::vector<RegionSpec> regions_;
  std::vector<std::vector<uint64_t>> words_;  ///< per region
};

}  // namespace godwit::snapshot
