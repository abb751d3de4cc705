// The a-b invariant checker (see abcheck.h for the invariant).
#include "tools/abcheck/abcheck.h"

#include <string>

namespace godwit::abcheck {
namespace {

std::string describe_failure(uint64_t page, uint8_t found, uint8_t k, uint64_t boundary) {
  std::string msg =
      "page " + std::to_string(page) + " holds " + std::to_string(found) + ", expected ";
  uint8_t previous = static_cast<uint8_t>(k - 1);
  if (boundary == page) {
    // Still in the leading run: k, or k-1 to open the one allowed boundary.
    msg += std::to_string(k) + " or " + std::to_string(previous);
  } else {
    msg +=
        std::to_string(previous) + " (boundary already at page " + std::to_string(boundary) + ")";
  }
  msg += " (k=" + std::to_string(k) + ")";
  return msg;
}

}  // namespace

AbCheckResult check_ab(std::span<const uint8_t> dump, uint64_t page_size) {
  AbCheckResult result;
  if (page_size == 0) {
    result.message = "page size 0 is invalid";
    return result;
  }
  const uint64_t pages = dump.size() / page_size;
  result.pages = pages;
  if (pages == 0) {
    result.message = "dump of " + std::to_string(dump.size()) +
                     " bytes holds no complete page of " + std::to_string(page_size) + " bytes";
    return result;
  }

  // The dirtier starts each pass at page 0, so page 0 is always the most
  // advanced counter: k. Pages are scanned in order; the first page holding
  // k-1 opens the boundary, and every later page must hold k-1 too.
  const uint8_t k = dump[0];
  const uint8_t previous = static_cast<uint8_t>(k - 1);
  uint64_t boundary = pages;
  for (uint64_t page = 1; page < pages; ++page) {
    const uint8_t value = dump[page * page_size];
    const bool in_leading_run = boundary == pages;
    if (in_leading_run && value == k) continue;
    if (value == previous) {
      if (in_leading_run) boundary = page;
      continue;
    }
    result.counter = k;
    result.trailing_counter = in_leading_run ? k : previous;
    result.boundary = in_leading_run ? page : boundary;
    result.bad_page = page;
    result.bad_value = value;
    result.message = describe_failure(page, value, k, result.boundary);
    return result;
  }

  result.ok = true;
  result.counter = k;
  result.trailing_counter = boundary == pages ? k : previous;
  result.boundary = boundary;
  result.message = "k=" + std::to_string(k);
  if (boundary == pages) {
    result.message += ", all " + std::to_string(pages) + " pages equal";
  } else {
    result.message += ", boundary at page " + std::to_string(boundary) + " of " +
                      std::to_string(pages) + " (pages from there hold " +
                      std::to_string(previous) + ")";
  }
  return result;
}

}  // namespace godwit::abcheck
