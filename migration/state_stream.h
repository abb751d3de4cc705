// The state stream: a self-describing container of versioned, checksummed
// sections, used for snapshot state files and (later) the device-state part
// of the migration stream. All integers little-endian:
//
//   header   "GDWTSTAT" (8 bytes) | format version u32 (= 1)
//   section  kind length u16 (1..64) | kind (ASCII [a-z0-9-]) | instance u32
//            | version u32 | payload length u64 | payload | crc32c u32
//   ...      (any number of sections, each key at most once)
//   end      u16 0 | section count u32 | crc32c u32
//
// A section's crc32c covers its record from the kind length through the
// payload, so a flipped bit in a header field is caught as well; the end
// record's covers its own first 6 bytes. parse_state_stream() checks the
// whole stream against a registry of known kinds before any section is
// decoded: wrong magic, unknown format version, truncation, checksum failure,
// unknown kind, version out of [min_version, version], duplicate section,
// wrong section count and bytes after the end all fail with a message naming
// the section ("vcpu[1]") and what is wrong. Payload length mismatches are
// found when the payload is decoded (SectionReader overrun / expect_end()).
// Diagrams and versioning rules: docs/state-format.md.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "migration/section.h"

namespace godwit::migration {

/// The 8 magic bytes that open every state stream.
inline constexpr std::array<uint8_t, 8> kStateStreamMagic = {'G', 'D', 'W', 'T',
                                                             'S', 'T', 'A', 'T'};
/// Container layout version written and accepted (sections version separately).
inline constexpr uint32_t kStateStreamFormatVersion = 1;
/// Longest section kind name.
inline constexpr size_t kMaxSectionKindLength = 64;

/// Whether `kind` is a valid section kind: 1..64 characters of [a-z0-9-].
[[nodiscard]] bool valid_section_kind(std::string_view kind);

/// Builds a state stream: header at construction, sections in call order,
/// end record at finish().
class StateStreamWriter {
 public:
  /// Starts a stream with its header.
  StateStreamWriter();

  /// Appends section `key` at `version` with `payload`. Fails for an invalid
  /// kind or a key already written.
  [[nodiscard]] Result<void> add(const SectionKey& key, uint32_t version,
                                 std::span<const uint8_t> payload);
  /// Appends the payload built by `payload`; also fails if the writer recorded an error.
  [[nodiscard]] Result<void> add(const SectionKey& key, uint32_t version,
                                 const SectionWriter& payload);
  /// Appends the end record and returns the stream.
  [[nodiscard]] std::vector<uint8_t> finish() &&;

 private:
  std::vector<uint8_t> out_;
  std::vector<SectionKey> written_;
};

/// A kind a loader understands and the versions of it that it can decode.
struct SectionSpec {
  std::string kind;
  uint32_t min_version = 1;  ///< oldest version still decoded
  uint32_t version = 1;      ///< version this code writes (newest decoded)
};

/// The kinds a loader understands.
class SectionRegistry {
 public:
  SectionRegistry() = default;
  /// A registry holding `specs`.
  SectionRegistry(std::initializer_list<SectionSpec> specs) : specs_(specs) {}
  /// Adds (or replaces) the spec of `spec.kind`.
  void add(SectionSpec spec);
  /// The spec of `kind`, or nullptr when unknown.
  [[nodiscard]] const SectionSpec* find(std::string_view kind) const;
  /// The known kinds, comma-separated, for error messages.
  [[nodiscard]] std::string kinds() const;

 private:
  std::vector<SectionSpec> specs_;
};

/// One checked section inside a parsed stream; `payload` points into the
/// parsed buffer, which must outlive the view.
struct SectionView {
  SectionKey key;
  uint32_t version = 0;
  std::span<const uint8_t> payload;
  uint64_t offset = 0;  ///< stream offset of the section record

  /// A reader over the payload, named after the key.
  [[nodiscard]] SectionReader reader() const { return SectionReader(key.name(), payload); }
};

/// Checks the container and every section header against `registry` and
/// returns the sections in stream order. Payloads are not decoded.
[[nodiscard]] Result<std::vector<SectionView>> parse_state_stream(std::span<const uint8_t> stream,
                                                                  const SectionRegistry& registry);

}  // namespace godwit::migration
