// State stream container: writer, registry and the checking parser.
#include "migration/state_stream.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "migration/crc32c.h"

namespace godwit::migration {
namespace {

void put_le(std::vector<uint8_t>& out, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_le(std::span<const uint8_t> bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes.size(); ++i) v |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  return v;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Reads the stream front to back; every failure names the stream offset.
class StreamCursor {
 public:
  explicit StreamCursor(std::span<const uint8_t> stream) : stream_(stream) {}

  /// Takes `n` bytes; `what` says which field was cut off.
  [[nodiscard]] Result<std::span<const uint8_t>> take(uint64_t n, std::string_view what) {
    if (n > remaining())
      return fail("state stream truncated at offset " + std::to_string(offset_) + ": " +
                  std::string(what) + " needs " + std::to_string(n) + " bytes, only " +
                  std::to_string(remaining()) + " left");
    auto out = stream_.subspan(offset_, n);
    offset_ += n;
    return out;
  }
  [[nodiscard]] Result<uint64_t> le(int width, std::string_view what) {
    return get_le(TRY(take(static_cast<uint64_t>(width), what)));
  }
  [[nodiscard]] size_t offset() const { return offset_; }
  [[nodiscard]] size_t remaining() const { return stream_.size() - offset_; }
  /// Bytes from `begin` to the current offset.
  [[nodiscard]] std::span<const uint8_t> since(size_t begin) const {
    return stream_.subspan(begin, offset_ - begin);
  }

 private:
  std::span<const uint8_t> stream_;
  size_t offset_ = 0;
};

Result<void> check_header(StreamCursor& in) {
  auto magic = TRY(in.take(kStateStreamMagic.size(), "the magic"));
  if (!std::equal(magic.begin(), magic.end(), kStateStreamMagic.begin()))
    return fail("not a godwit state stream: the first 8 bytes are not \"GDWTSTAT\"");
  uint32_t format = static_cast<uint32_t>(TRY(in.le(4, "the format version")));
  if (format != kStateStreamFormatVersion)
    return fail("state stream format version " + std::to_string(format) +
                " is not supported (this loader reads version " +
                std::to_string(kStateStreamFormatVersion) + ")");
  return {};
}

Result<void> check_end(StreamCursor& in, size_t record_start, size_t sections) {
  uint32_t count = static_cast<uint32_t>(TRY(in.le(4, "the end record's section count")));
  uint32_t computed = crc32c(in.since(record_start));
  uint32_t stored = static_cast<uint32_t>(TRY(in.le(4, "the end record's checksum")));
  if (stored != computed)
    return fail("state stream end record at offset " + std::to_string(record_start) +
                ": checksum mismatch (stored " + hex(stored) + ", computed " + hex(computed) + ")");
  if (count != sections)
    return fail("state stream end record says " + std::to_string(count) + " sections, " +
                std::to_string(sections) + " were read");
  if (in.remaining() != 0)
    return fail("state stream: " + std::to_string(in.remaining()) +
                " bytes after the end record at offset " + std::to_string(in.offset()));
  return {};
}

Result<void> check_version(const SectionView& s, const SectionRegistry& registry) {
  const SectionSpec* spec = registry.find(s.key.kind);
  std::string where = s.key.name() + " at offset " + std::to_string(s.offset);
  if (!spec)
    return fail(where + ": unknown section kind '" + s.key.kind +
                "' (this loader knows: " + registry.kinds() + ")");
  std::string range = std::to_string(spec->min_version) + ".." + std::to_string(spec->version);
  if (s.version > spec->version)
    return fail(where + ": version " + std::to_string(s.version) +
                " is too new (this loader reads versions " + range + ")");
  if (s.version < spec->min_version)
    return fail(where + ": version " + std::to_string(s.version) +
                " is too old (this loader reads versions " + range + ")");
  return {};
}

}  // namespace

bool valid_section_kind(std::string_view kind) {
  if (kind.empty() || kind.size() > kMaxSectionKindLength) return false;
  return std::ranges::all_of(
      kind, [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

StateStreamWriter::StateStreamWriter() {
  out_.assign(kStateStreamMagic.begin(), kStateStreamMagic.end());
  put_le(out_, kStateStreamFormatVersion, 4);
}

Result<void> StateStreamWriter::add(const SectionKey& key, uint32_t version,
                                    std::span<const uint8_t> payload) {
  if (!valid_section_kind(key.kind))
    return fail("state stream: section kind '" + key.kind +
                "' is invalid (1..64 characters of a-z, 0-9, '-')");
  if (std::ranges::find(written_, key) != written_.end())
    return fail("state stream: section " + key.name() + " written twice");
  written_.push_back(key);
  size_t start = out_.size();
  put_le(out_, key.kind.size(), 2);
  out_.insert(out_.end(), key.kind.begin(), key.kind.end());
  put_le(out_, key.instance, 4);
  put_le(out_, version, 4);
  put_le(out_, payload.size(), 8);
  out_.insert(out_.end(), payload.begin(), payload.end());
  uint32_t crc = crc32c(std::span<const uint8_t>(out_).subspan(start));
  put_le(out_, crc, 4);
  return {};
}

Result<void> StateStreamWriter::add(const SectionKey& key, uint32_t version,
                                    const SectionWriter& payload) {
  if (auto ok = payload.status(); !ok)
    return fail(ok.error().context("state stream: encoding " + key.name()));
  return add(key, version, payload.data());
}

std::vector<uint8_t> StateStreamWriter::finish() && {
  size_t start = out_.size();
  put_le(out_, 0, 2);
  put_le(out_, written_.size(), 4);
  uint32_t crc = crc32c(std::span<const uint8_t>(out_).subspan(start));
  put_le(out_, crc, 4);
  return std::move(out_);
}

void SectionRegistry::add(SectionSpec spec) {
  auto it = std::ranges::find(specs_, spec.kind, &SectionSpec::kind);
  if (it != specs_.end())
    *it = std::move(spec);
  else
    specs_.push_back(std::move(spec));
}

const SectionSpec* SectionRegistry::find(std::string_view kind) const {
  auto it = std::ranges::find(specs_, kind, &SectionSpec::kind);
  return it == specs_.end() ? nullptr : &*it;
}

std::string SectionRegistry::kinds() const {
  std::string out;
  for (const auto& s : specs_) out += (out.empty() ? "" : ", ") + s.kind;
  return out.empty() ? "none" : out;
}

Result<std::vector<SectionView>> parse_state_stream(std::span<const uint8_t> stream,
                                                    const SectionRegistry& registry) {
  StreamCursor in(stream);
  TRY_VOID(check_header(in));
  std::vector<SectionView> sections;
  std::set<SectionKey> seen;
  for (;;) {
    size_t start = in.offset();
    auto kind_length = TRY(in.le(2, "a section header (no end record)"));
    if (kind_length == 0) {
      TRY_VOID(check_end(in, start, sections.size()));
      return sections;
    }
    if (kind_length > kMaxSectionKindLength)
      return fail("state stream: section header at offset " + std::to_string(start) +
                  ": kind length " + std::to_string(kind_length) + " exceeds " +
                  std::to_string(kMaxSectionKindLength) + " (corrupt stream)");
    auto kind_bytes = TRY(in.take(kind_length, "a section kind"));
    SectionView s;
    s.offset = start;
    s.key.kind.assign(kind_bytes.begin(), kind_bytes.end());
    s.key.instance = static_cast<uint32_t>(TRY(in.le(4, "section " + s.key.kind + " instance")));
    std::string name = s.key.name();
    s.version = static_cast<uint32_t>(TRY(in.le(4, "section " + name + " version")));
    uint64_t length = TRY(in.le(8, "section " + name + " length"));
    s.payload = TRY(in.take(length, "the payload of section " + name));
    uint32_t computed = crc32c(in.since(start));
    uint32_t stored = static_cast<uint32_t>(TRY(in.le(4, "the checksum of section " + name)));
    if (stored != computed)
      return fail(name + " at offset " + std::to_string(start) + ": checksum mismatch (stored " +
                  hex(stored) + ", computed " + hex(computed) + "): section corrupt");
    if (!valid_section_kind(s.key.kind))
      return fail("state stream: section at offset " + std::to_string(start) +
                  " has an invalid kind (not a-z, 0-9, '-')");
    TRY_VOID(check_version(s, registry));
    if (!seen.insert(s.key).second)
      return fail(name + " at offset " + std::to_string(start) + ": duplicate section");
    sections.push_back(std::move(s));
  }
}

}  // namespace godwit::migration
