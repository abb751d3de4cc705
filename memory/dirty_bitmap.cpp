// DirtyBitmap: one relaxed-atomic bit per guest page, set by VMM-side writes
// and harvested word by word by the migration sender.
#include <bit>

#include "memory/guest_memory.h"

namespace godwit {

DirtyBitmap::DirtyBitmap(uint64_t pages) : pages_(pages), words_((pages + 63) / 64) {}

void DirtyBitmap::mark(uint64_t index) {
  if (index >= pages_) return;
  words_[index / 64].fetch_or(uint64_t{1} << (index % 64), std::memory_order_relaxed);
}

void DirtyBitmap::mark_range(uint64_t first, uint64_t count) {
  if (first >= pages_) return;
  if (count > pages_ - first) count = pages_ - first;
  uint64_t end = first + count;
  while (first < end) {
    uint64_t word = first / 64;
    uint64_t bit = first % 64;
    uint64_t n = std::min<uint64_t>(64 - bit, end - first);
    uint64_t mask = n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1) << bit;
    words_[word].fetch_or(mask, std::memory_order_relaxed);
    first += n;
  }
}

bool DirtyBitmap::test(uint64_t index) const {
  if (index >= pages_) return false;
  return (words_[index / 64].load(std::memory_order_relaxed) >> (index % 64)) & 1;
}

uint64_t DirtyBitmap::take_word(uint64_t word) {
  if (word >= words_.size()) return 0;
  return words_[word].exchange(0, std::memory_order_acq_rel);
}

void DirtyBitmap::clear() {
  for (auto& w : words_) w.store(0, std::memory_order_relaxed);
}

uint64_t DirtyBitmap::count() const {
  uint64_t total = 0;
  for (const auto& w : words_) total += std::popcount(w.load(std::memory_order_relaxed));
  return total;
}

}  // namespace godwit
