// PageSet: per-region page bitmaps filled from the KVM dirty log, the
// VMM-side dirty bitmap and explicit ranges.
#include "snapshot/page_set.h"

#include <bit>

#include "snapshot/memory_file_format.h"

namespace godwit::snapshot {
namespace {

// Bits past the region's last page must stay clear in the last word.
uint64_t last_word_mask(uint64_t pages) {
  return pages % 64 == 0 ? ~uint64_t{0} : (uint64_t{1} << (pages % 64)) - 1;
}

}  // namespace

PageSet::PageSet(std::span<const RegionSpec> regions) : regions_(regions.begin(), regions.end()) {
  for (const RegionSpec& r : regions_) words_.emplace_back((r.size / kPageSize + 63) / 64, 0);
}

PageSet PageSet::for_memory(const GuestMemory& memory) { return PageSet(memory.layout()); }

Result<void> PageSet::add_range(uint64_t gpa, uint64_t len) {
  if (len == 0) return {};
  // Check first so that a failure adds nothing.
  for (uint64_t at = gpa, left = len; left > 0;) {
    const RegionSpec* hit = nullptr;
    for (const RegionSpec& r : regions_)
      if (at >= r.gpa && at - r.gpa < r.size) hit = &r;
    if (hit == nullptr)
      return fail("page set add gpa " + hex_u64(gpa) + " len " + std::to_string(len) +
                  ": byte at " + hex_u64(at) + " is outside guest RAM");
    uint64_t n = std::min(left, hit->gpa + hit->size - at);
    at += n;
    left -= n;
  }
  for (size_t i = 0; i < regions_.size(); ++i) {
    const RegionSpec& r = regions_[i];
    uint64_t lo = std::max(gpa, r.gpa);
    uint64_t hi = std::min(gpa + len, r.gpa + r.size);
    if (lo >= hi) continue;
    for (uint64_t p = (lo - r.gpa) / kPageSize; p <= (hi - 1 - r.gpa) / kPageSize; ++p)
      words_[i][p / 64] |= uint64_t{1} << (p % 64);
  }
  return {};
}

Result<void> PageSet::add_dirty_log(uint32_t slot, std::span<const uint64_t> bitmap) {
  if (slot >= regions_.size())
    return fail("page set: dirty log of slot " + std::to_string(slot) + " but only " +
                std::to_string(regions_.size()) + " regions");
  std::vector<uint64_t>& words = words_[slot];
  if (bitmap.size() < words.size())
    return fail("page set: dirty log of slot " + std::to_string(slot) + " has " +
                std::to_string(bitmap.size()) + " words, the slot needs " +
                std::to_string(words.size()));
  for (size_t w = 0; w < words.size(); ++w) words[w] |= bitmap[w];
  words.back() &= last_word_mask(regions_[slot].size / kPageSize);
  return {};
}

Result<void> PageSet::take_vmm_dirty(uint32_t region, DirtyBitmap& vmm_dirty) {
  if (region >= regions_.size())
    return fail("page set: VMM dirty bitmap of region " + std::to_string(region) + " but only " +
                std::to_string(regions_.size()) + " regions");
  std::vector<uint64_t>& words = words_[region];
  if (vmm_dirty.pages() != regions_[region].size / kPageSize)
    return fail("page set: VMM dirty bitmap of region " + std::to_string(region) + " tracks " +
                std::to_string(vmm_dirty.pages()) + " pages, the region has " +
                std::to_string(regions_[region].size / kPageSize));
  for (size_t w = 0; w < words.size(); ++w) words[w] |= vmm_dirty.take_word(w);
  return {};
}

Result<void> PageSet::take_vmm_dirty(GuestMemory& memory) {
  PageSet probe = for_memory(memory);
  if (!same_regions(probe.regions(), regions_))
    return fail("page set over " + describe_regions(regions_) + " does not match guest memory " +
                describe_regions(probe.regions()));
  for (uint32_t r = 0; r < regions_.size(); ++r) TRY_VOID(take_vmm_dirty(r, memory.vmm_dirty(r)));
  return {};
}

Result<void> PageSet::add_set(const PageSet& other) {
  if (!same_regions(other.regions_, regions_))
    return fail("page set over " + describe_regions(other.regions_) +
                " cannot be added to one over " + describe_regions(regions_));
  for (size_t r = 0; r < words_.size(); ++r)
    for (size_t w = 0; w < words_[r].size(); ++w) words_[r][w] |= other.words_[r][w];
  return {};
}

void PageSet::add_all() {
  for (size_t r = 0; r < words_.size(); ++r) {
    for (uint64_t& w : words_[r]) w = ~uint64_t{0};
    if (!words_[r].empty()) words_[r].back() &= last_word_mask(regions_[r].size / kPageSize);
  }
}

void PageSet::clear() {
  for (auto& words : words_)
    for (uint64_t& w : words) w = 0;
}

bool PageSet::contains(uint64_t gpa) const {
  for (size_t r = 0; r < regions_.size(); ++r) {
    if (gpa < regions_[r].gpa || gpa - regions_[r].gpa >= regions_[r].size) continue;
    uint64_t p = (gpa - regions_[r].gpa) / kPageSize;
    return (words_[r][p / 64] >> (p % 64)) & 1;
  }
  return false;
}

uint64_t PageSet::count() const {
  uint64_t n = 0;
  for (const auto& words : words_)
    for (uint64_t w : words) n += std::popcount(w);
  return n;
}

}  // namespace godwit::snapshot
