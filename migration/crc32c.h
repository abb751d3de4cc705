// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
// section of a state stream (docs/state-format.md). Chosen over CRC-32 for its
// better error detection on short records and over XXH3 to keep the codec free
// of dependencies; state sections are kilobytes, so a table version is enough.
#pragma once

#include <cstdint>
#include <span>

namespace godwit::migration {

/// Continues a CRC-32C over `bytes`; start with crc = 0. crc32c("123456789") == 0xE3069283.
[[nodiscard]] uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc = 0);

}  // namespace godwit::migration
