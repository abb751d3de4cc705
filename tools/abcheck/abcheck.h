// The a-b invariant checker: decides whether a memory dump of the a-b guest's
// page range is consistent with a dirtier that increments the first byte of
// every page in page order, pass after pass (see docs/guests.md).
//
// A consistent dump holds, for some counter value k:
//
//   page:   0 ........ b-1 | b ........ n-1
//   value:  k   k   k   k  | k-1 k-1 k-1 k-1     (mod 256)
//
// with at most one boundary b (0 < b < n); b == n means every page holds k.
// A migration that lost a dirty page, or restored a stale one, shows up as a
// second boundary or as a counter that is off by more than one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace godwit::abcheck {

/// Outcome of check_ab(): the counters found and, on failure, where and why.
struct AbCheckResult {
  /// True when the dump satisfies the a-b invariant.
  bool ok = false;
  /// Number of complete pages examined.
  uint64_t pages = 0;
  /// k: the counter held by the leading pages [0, boundary).
  uint8_t counter = 0;
  /// The counter held by the trailing pages [boundary, pages): k-1, or k when
  /// there is no boundary.
  uint8_t trailing_counter = 0;
  /// Index of the first page holding k-1; equals `pages` when all pages are equal.
  uint64_t boundary = 0;
  /// On failure: the first page that breaks the invariant (absent when the
  /// dump itself is unusable, e.g. empty).
  std::optional<uint64_t> bad_page;
  /// On failure with bad_page: the value found there.
  uint8_t bad_value = 0;
  /// Human-readable summary ("k=7 boundary=12 of 1024 pages" or the reason of failure).
  std::string message;
};

/// Checks the a-b invariant over the first byte of every complete page of
/// `dump` (which starts at the first page of the a-b range). A trailing partial
/// page is ignored; an empty dump or a zero page size is a failure.
[[nodiscard]] AbCheckResult check_ab(std::span<const uint8_t> dump, uint64_t page_size = 4096);

}  // namespace godwit::abcheck
