// Parsing of unsigned numbers given by users (options, query strings):
// decimal or 0x-prefixed hexadecimal, the whole string, no sign or suffix.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace godwit {

/// Parses "1234" or "0x4d2" into 64 bits; the error quotes the text.
[[nodiscard]] inline Result<uint64_t> parse_u64(std::string_view text) {
  std::string_view digits = text;
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    digits.remove_prefix(2);
    base = 16;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || ec == std::errc::invalid_argument || end != digits.data() + digits.size())
    return fail("'" + std::string(text) + "' is not a number (decimal or 0x hex)");
  if (ec == std::errc::result_out_of_range)
    return fail("'" + std::string(text) + "' does not fit in 64 bits");
  return value;
}

}  // namespace godwit
