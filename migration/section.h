// Explicit little-endian encoding of one state section's payload.
//
// SectionWriter appends fields one by one; SectionReader reads them back with
// bounds checks, failing with a message that names the section
// ("vcpu[1]") and the payload offset of the field. Host structs are never
// copied as memory: every integer is written byte by byte, least significant
// first. Only byte arrays that have no other layout (the LAPIC register page,
// the XSAVE area, a device's own opaque state) are copied, and they carry
// their length. The container around payloads (magic, headers, checksums) is
// in migration/state_stream.h; the layout is drawn in docs/state-format.md.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace godwit::migration {

/// Which section: a kind ("vcpu", "virtio-mmio", ...) and an instance
/// (vCPU index, device index).
struct SectionKey {
  std::string kind;
  uint32_t instance = 0;

  /// "kind[instance]", the name every error message uses.
  [[nodiscard]] std::string name() const { return kind + "[" + std::to_string(instance) + "]"; }

  friend bool operator==(const SectionKey&, const SectionKey&) = default;
  friend auto operator<=>(const SectionKey&, const SectionKey&) = default;
};

/// Builds one section payload. Writing cannot fail except for a blob or
/// string longer than 4 GiB - 1, which sets a sticky error reported by status().
class SectionWriter {
 public:
  /// Appends one byte.
  void u8(uint8_t v) { buffer_.push_back(v); }
  /// Appends 2 bytes, little-endian.
  void u16(uint16_t v) { little_endian(v, 2); }
  /// Appends 4 bytes, little-endian.
  void u32(uint32_t v) { little_endian(v, 4); }
  /// Appends 8 bytes, little-endian.
  void u64(uint64_t v) { little_endian(v, 8); }
  /// Appends 8 bytes: the two's complement bit pattern of `v`, little-endian.
  void i64(int64_t v) { little_endian(static_cast<uint64_t>(v), 8); }
  /// Appends one byte, 0 or 1.
  void boolean(bool v) { buffer_.push_back(v ? 1 : 0); }
  /// Appends a byte array of a size both sides know (no length prefix).
  void raw(std::span<const uint8_t> bytes);
  /// Appends a u32 length, then the bytes.
  void bytes(std::span<const uint8_t> bytes);
  /// Appends a u32 length, then the characters (no terminator).
  void string(std::string_view text);

  /// Bytes written so far.
  [[nodiscard]] size_t size() const { return buffer_.size(); }
  /// The payload so far.
  [[nodiscard]] std::span<const uint8_t> data() const { return buffer_; }
  /// Success, or the first error (an over-long blob or string).
  [[nodiscard]] Result<void> status() const;
  /// Moves the payload out.
  [[nodiscard]] std::vector<uint8_t> take() && { return std::move(buffer_); }

 private:
  void little_endian(uint64_t v, int width);
  std::vector<uint8_t> buffer_;
  std::string error_;
};

/// Reads one section payload with bounds checks. Errors read
/// "<section> payload offset <n>: <what>".
class SectionReader {
 public:
  /// `section` names the payload in errors ("vcpu[1]"); `payload` must
  /// outlive the reader.
  SectionReader(std::string section, std::span<const uint8_t> payload)
      : section_(std::move(section)), payload_(payload) {}

  /// Reads one byte.
  [[nodiscard]] Result<uint8_t> u8();
  /// Reads 2 bytes, little-endian.
  [[nodiscard]] Result<uint16_t> u16();
  /// Reads 4 bytes, little-endian.
  [[nodiscard]] Result<uint32_t> u32();
  /// Reads 8 bytes, little-endian.
  [[nodiscard]] Result<uint64_t> u64();
  /// Reads 8 bytes as a two's complement signed value.
  [[nodiscard]] Result<int64_t> i64();
  /// Reads one byte that must be 0 or 1.
  [[nodiscard]] Result<bool> boolean();
  /// Fills `out` from a byte array of known size (no length prefix).
  [[nodiscard]] Result<void> raw(std::span<uint8_t> out);
  /// Reads a u32 length and that many bytes.
  [[nodiscard]] Result<std::vector<uint8_t>> bytes();
  /// Reads a u32 length and that many characters.
  [[nodiscard]] Result<std::string> string();
  /// Reads a u32 element count and checks that `count * min_element_bytes`
  /// still fits in the payload (so a corrupt count cannot allocate gigabytes);
  /// `what` names the elements in the error.
  [[nodiscard]] Result<uint32_t> count(size_t min_element_bytes, std::string_view what);
  /// Fails when bytes are left over: the payload is longer than its layout.
  [[nodiscard]] Result<void> expect_end() const;

  /// Offset of the next field in the payload.
  [[nodiscard]] size_t offset() const { return offset_; }
  /// Bytes not read yet.
  [[nodiscard]] size_t remaining() const { return payload_.size() - offset_; }
  /// The section name given at construction.
  [[nodiscard]] const std::string& section() const { return section_; }
  /// An error at the current offset: "<section> payload offset <n>: <what>".
  [[nodiscard]] std::unexpected<Error> error(std::string_view what) const {
    return error_at(offset_, what);
  }
  /// An error about the field at payload offset `offset`.
  [[nodiscard]] std::unexpected<Error> error_at(size_t offset, std::string_view what) const;

 private:
  /// Takes `n` bytes or fails with an overrun error.
  [[nodiscard]] Result<std::span<const uint8_t>> take(size_t n);
  [[nodiscard]] Result<uint64_t> little_endian(int width);

  std::string section_;
  std::span<const uint8_t> payload_;
  size_t offset_ = 0;
};

}  // namespace godwit::migration
