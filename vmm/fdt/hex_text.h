// Hexadecimal text for node names ("d0001000"), command lines and error
// messages ("0xd0001000"). GCC 12 has no <format>, so this wraps to_chars.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>

namespace godwit::fdt {

/// Lower-case hexadecimal digits without prefix or leading zeros ("0", "fec00000").
[[nodiscard]] inline std::string hex_digits(uint64_t value) {
  char buffer[16];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value, 16);
  return std::string(buffer, result.ptr);
}

/// hex_digits() with a "0x" prefix.
[[nodiscard]] inline std::string hex(uint64_t value) { return "0x" + hex_digits(value); }

}  // namespace godwit::fdt
