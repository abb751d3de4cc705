// Little-endian integers in byte buffers, for wire formats that encode every
// field explicitly (never a host struct copied out).
#pragma once

#include <cstdint>

namespace godwit {

/// Writes the low `width` bytes of `v` to `out`, least significant first.
inline void put_le(uint8_t* out, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

/// Reads `width` bytes from `in`, least significant first.
[[nodiscard]] inline uint64_t get_le(const uint8_t* in, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

}  // namespace godwit
