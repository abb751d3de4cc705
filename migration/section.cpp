// SectionWriter / SectionReader: little-endian field codec with bounds checks.
#include "migration/section.h"

#include <algorithm>
#include <limits>

namespace godwit::migration {

void SectionWriter::little_endian(uint64_t v, int width) {
  for (int i = 0; i < width; ++i) buffer_.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void SectionWriter::raw(std::span<const uint8_t> bytes) {
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

void SectionWriter::bytes(std::span<const uint8_t> bytes) {
  if (bytes.size() > std::numeric_limits<uint32_t>::max()) {
    if (error_.empty())
      error_ = "byte array of " + std::to_string(bytes.size()) + " bytes at payload offset " +
               std::to_string(buffer_.size()) + " exceeds the 4 GiB - 1 limit";
    return;
  }
  u32(static_cast<uint32_t>(bytes.size()));
  raw(bytes);
}

void SectionWriter::string(std::string_view text) {
  bytes({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

Result<void> SectionWriter::status() const {
  if (!error_.empty()) return fail(error_);
  return {};
}

std::unexpected<Error> SectionReader::error_at(size_t offset, std::string_view what) const {
  return fail(section_ + " payload offset " + std::to_string(offset) + ": " + std::string(what));
}

Result<std::span<const uint8_t>> SectionReader::take(size_t n) {
  if (n > remaining())
    return error("needs " + std::to_string(n) + " bytes but only " + std::to_string(remaining()) +
                 " are left (payload shorter than its layout)");
  auto out = payload_.subspan(offset_, n);
  offset_ += n;
  return out;
}

Result<uint64_t> SectionReader::little_endian(int width) {
  auto b = TRY(take(static_cast<size_t>(width)));
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
  return v;
}

Result<uint8_t> SectionReader::u8() { return static_cast<uint8_t>(TRY(little_endian(1))); }
Result<uint16_t> SectionReader::u16() { return static_cast<uint16_t>(TRY(little_endian(2))); }
Result<uint32_t> SectionReader::u32() { return static_cast<uint32_t>(TRY(little_endian(4))); }
Result<uint64_t> SectionReader::u64() { return little_endian(8); }
Result<int64_t> SectionReader::i64() { return static_cast<int64_t>(TRY(little_endian(8))); }

Result<bool> SectionReader::boolean() {
  uint8_t v = TRY(u8());
  if (v > 1) {
    return error_at(offset_ - 1, "boolean byte is " + std::to_string(v) + ", expected 0 or 1");
  }
  return v == 1;
}

Result<void> SectionReader::raw(std::span<uint8_t> out) {
  auto b = TRY(take(out.size()));
  std::copy(b.begin(), b.end(), out.begin());
  return {};
}

Result<std::vector<uint8_t>> SectionReader::bytes() {
  uint32_t n = TRY(u32());
  auto b = TRY(take(n));
  return std::vector<uint8_t>(b.begin(), b.end());
}

Result<std::string> SectionReader::string() {
  uint32_t n = TRY(u32());
  auto b = TRY(take(n));
  return std::string(b.begin(), b.end());
}

Result<uint32_t> SectionReader::count(size_t min_element_bytes, std::string_view what) {
  uint32_t n = TRY(u32());
  if (min_element_bytes != 0 && n > remaining() / min_element_bytes)
    return error_at(offset_ - 4, std::to_string(n) + " " + std::string(what) + " of at least " +
                                     std::to_string(min_element_bytes) +
                                     " bytes each cannot fit in the " +
                                     std::to_string(remaining()) + " bytes left");
  return n;
}

Result<void> SectionReader::expect_end() const {
  if (remaining() != 0)
    return error(std::to_string(remaining()) +
                 " trailing bytes after the last field (payload longer than its layout)");
  return {};
}

}  // namespace godwit::migration
