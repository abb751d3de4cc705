// Parsing of numbers in option strings: decimal or 0x-prefixed hexadecimal.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace godwit::boot {

/// Parses "1234" or "0x4d2" (whole string, no sign, no suffix); nullopt otherwise.
[[nodiscard]] inline std::optional<uint64_t> parse_number(std::string_view text) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace godwit::boot
