// The state stream container and the section field codec: golden bytes of a
// whole stream (checksums computed by an independent CRC-32C), and every
// corruption a loader must refuse with a message naming the section: bit
// flips, truncation, unknown kind, version too new / too old, payload too
// long / too short, wrong magic, duplicates, bytes after the end.
#include <gtest/gtest.h>

#include "migration/crc32c.h"
#include "migration/state_codecs.h"
#include "migration/state_stream.h"
#include "migration_test_states.h"

namespace godwit::migration {
namespace {

using test::Bytes;

std::vector<uint8_t> serial_payload() { return test::TestStates<SerialState>::golden_bytes(); }

/// A stream with the given sections of the serial payload.
std::vector<uint8_t> stream_of(std::initializer_list<std::pair<SectionKey, uint32_t>> sections,
                               std::vector<uint8_t> payload = serial_payload()) {
  StateStreamWriter w;
  for (const auto& [key, version] : sections) EXPECT_TRUE(w.add(key, version, payload));
  return std::move(w).finish();
}

SectionRegistry serial_only() { return {section_spec<SerialState>()}; }

std::string parse_error(std::span<const uint8_t> stream,
                        const SectionRegistry& registry = serial_only()) {
  auto parsed = parse_state_stream(stream, registry);
  return parsed ? std::string("(parsed)") : parsed.error().message;
}

TEST(Crc32c, MatchesTheStandardCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c({reinterpret_cast<const uint8_t*>(check.data()), check.size()}), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(SectionCodec, WritesLittleEndianAndReadsItBack) {
  SectionWriter w;
  w.u8(0x01);
  w.u16(0x0302);
  w.u32(0x07060504);
  w.u64(0x0f0e0d0c0b0a0908);
  w.i64(-2);
  w.boolean(true);
  w.bytes(std::vector<uint8_t>{0xaa});
  w.string("hi");
  std::vector<uint8_t> expected = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                   0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xfe, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x00, 0x00,
                                   0x00, 0xaa, 0x02, 0x00, 0x00, 0x00, 'h',  'i'};
  ASSERT_TRUE(w.status());
  EXPECT_EQ(std::vector<uint8_t>(w.data().begin(), w.data().end()), expected);

  SectionReader r("x[0]", expected);
  EXPECT_EQ(*r.u8(), 0x01);
  EXPECT_EQ(*r.u16(), 0x0302);
  EXPECT_EQ(*r.u32(), 0x07060504u);
  EXPECT_EQ(*r.u64(), 0x0f0e0d0c0b0a0908u);
  EXPECT_EQ(*r.i64(), -2);
  EXPECT_EQ(*r.boolean(), true);
  EXPECT_EQ(*r.bytes(), std::vector<uint8_t>{0xaa});
  EXPECT_EQ(*r.string(), "hi");
  EXPECT_TRUE(r.expect_end());
}

TEST(SectionCodec, OverrunNamesSectionAndOffset) {
  std::vector<uint8_t> three = {1, 2, 3};
  SectionReader r("uart[2]", three);
  ASSERT_TRUE(r.u16());
  auto v = r.u32();
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message,
            "uart[2] payload offset 2: needs 4 bytes but only 1 are left (payload shorter than "
            "its layout)");
}

TEST(SectionCodec, RejectsABooleanThatIsNeitherZeroNorOne) {
  std::vector<uint8_t> bytes = {0, 2};
  SectionReader r("s[0]", bytes);
  ASSERT_TRUE(r.boolean());
  auto v = r.boolean();
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message, "s[0] payload offset 1: boolean byte is 2, expected 0 or 1");
}

TEST(SectionCodec, ACorruptCountCannotAllocate) {
  auto bytes = Bytes{}.u32(0xffffffff).zeros(12).v;
  SectionReader r("vcpu[0]", bytes);
  auto n = r.count(12, "MSRs");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().message,
            "vcpu[0] payload offset 0: 4294967295 MSRs of at least 12 bytes each cannot fit in "
            "the 12 bytes left");
  SectionReader ok("vcpu[0]", bytes);
  auto b = ok.bytes();  // length 0xffffffff, 12 bytes present
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("vcpu[0] payload offset 4: needs 4294967295 bytes"),
            std::string::npos);
}

// Header, one serial[0] v1 section and the end record, byte by byte. The CRCs
// come from an independent CRC-32C implementation.
TEST(StateStream, GoldenBytes) {
  auto payload = serial_payload();
  std::vector<uint8_t> expected =
      Bytes{}
          .raw({'G', 'D', 'W', 'T', 'S', 'T', 'A', 'T', 0x01, 0x00, 0x00, 0x00})
          .raw({0x06, 0x00, 's', 'e', 'r', 'i', 'a', 'l'})  // kind
          .raw({0x00, 0x00, 0x00, 0x00})                    // instance 0
          .raw({0x01, 0x00, 0x00, 0x00})                    // version 1
          .raw({0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})
          .raw({0x01, 0x02, 0x03, 0xc1, 0x1b, 0x0b, 0x61, 0xb0, 0x5a, 0x01, 0x02, 0x00, 0x00, 0x00,
                0x41, 0x42})              // payload
          .raw({0xad, 0x22, 0xe0, 0x9a})  // crc32c 0x9ae022ad
          .raw({0x00, 0x00})              // end record
          .raw({0x01, 0x00, 0x00, 0x00})  // 1 section
          .raw({0x32, 0xd6, 0x6f, 0x8a})  // crc32c 0x8a6fd632
          .v;
  auto stream = stream_of({{{"serial", 0}, 1}});
  EXPECT_EQ(stream, expected);
  auto parsed = parse_state_stream(expected, serial_only());
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].key, (SectionKey{"serial", 0}));
  EXPECT_EQ((*parsed)[0].version, 1u);
  EXPECT_EQ((*parsed)[0].offset, 12u);
  EXPECT_EQ(std::vector<uint8_t>((*parsed)[0].payload.begin(), (*parsed)[0].payload.end()),
            payload);
}

TEST(StateStream, EmptyStreamGoldenBytes) {
  StateStreamWriter w;
  auto stream = std::move(w).finish();
  EXPECT_EQ(stream, Bytes{}
                        .raw({'G', 'D', 'W', 'T', 'S', 'T', 'A', 'T', 1, 0, 0, 0})
                        .raw({0, 0, 0, 0, 0, 0, 0x8a, 0x7c, 0x2a, 0x57})
                        .v);
  auto parsed = parse_state_stream(stream, {});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->empty());
}

TEST(StateStream, PayloadBitFlipIsAChecksumErrorNamingTheSection) {
  auto good = stream_of({{{"serial", 0}, 1}, {{"serial", 1}, 1}});
  const size_t second = 12 + 44;  // header, then the first record (8 + 16 + 16 + 4 bytes)
  for (size_t i = 0; i < 16; ++i) {
    auto bad = good;
    bad[second + 8 + 16 + i] ^= 0x10;
    std::string error = parse_error(bad);
    EXPECT_TRUE(error.starts_with("serial[1] at offset 56: checksum mismatch (stored 0x"))
        << "payload byte " << i << ": " << error;
    EXPECT_TRUE(error.ends_with("): section corrupt")) << error;
  }
}

TEST(StateStream, EveryBitFlipAnywhereIsRefused) {
  auto good = stream_of({{{"serial", 0}, 1}, {{"serial", 1}, 1}});
  for (size_t i = 0; i < good.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      EXPECT_NE(parse_error(bad), "(parsed)") << "byte " << i << " bit " << bit;
    }
}

TEST(StateStream, EveryTruncationIsRefused) {
  auto good = stream_of({{{"serial", 0}, 1}});
  for (size_t n = 0; n < good.size(); ++n) {
    std::string error = parse_error(std::span(good).first(n));
    EXPECT_NE(error.find("state stream truncated at offset"), std::string::npos)
        << n << ": " << error;
  }
  EXPECT_EQ(parse_error(std::span(good).first(40)),
            "state stream truncated at offset 36: the payload of section serial[0] needs 16 "
            "bytes, only 4 left");
}

TEST(StateStream, UnknownSectionIsRefusedByName) {
  auto stream = stream_of({{{"serial", 0}, 1}, {{"i8042", 0}, 1}});
  EXPECT_EQ(parse_error(stream),
            "i8042[0] at offset 56: unknown section kind 'i8042' (this loader knows: serial)");
}

TEST(StateStream, VersionTooNewIsRefusedByName) {
  auto stream = stream_of({{{"serial", 0}, 2}});
  EXPECT_EQ(parse_error(stream),
            "serial[0] at offset 12: version 2 is too new (this loader reads versions 1..1)");
}

TEST(StateStream, VersionTooOldIsRefusedByName) {
  auto stream = stream_of({{{"serial", 0}, 1}});
  SectionRegistry newer{{"serial", 2, 3}};
  EXPECT_EQ(parse_error(stream, newer),
            "serial[0] at offset 12: version 1 is too old (this loader reads versions 2..3)");
}

TEST(StateStream, VersionsInsideTheRangeAreAccepted) {
  SectionRegistry range{{"serial", 2, 4}};
  for (uint32_t v : {2u, 3u, 4u})
    EXPECT_EQ(parse_error(stream_of({{{"serial", 0}, v}}), range), "(parsed)") << v;
}

TEST(StateStream, PayloadLongerThanItsLayoutFailsWhenDecoded) {
  auto payload = serial_payload();
  payload.push_back(0x99);
  auto stream = stream_of({{{"serial", 4}, 1}}, payload);
  auto parsed = parse_state_stream(stream, serial_only());
  ASSERT_TRUE(parsed) << parsed.error().message;
  auto decoded = decode_section<SerialState>((*parsed)[0]);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().message,
            "serial[4] payload offset 16: 1 trailing bytes after the last field (payload longer "
            "than its layout)");
}

TEST(StateStream, PayloadShorterThanItsLayoutFailsWhenDecoded) {
  auto payload = serial_payload();
  payload.pop_back();
  auto stream = stream_of({{{"serial", 0}, 1}}, payload);
  auto parsed = parse_state_stream(stream, serial_only());
  ASSERT_TRUE(parsed) << parsed.error().message;
  auto decoded = decode_section<SerialState>((*parsed)[0]);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().message,
            "serial[0] payload offset 14: needs 2 bytes but only 1 are left (payload shorter "
            "than its layout)");
}

TEST(StateStream, WrongMagicIsRefused) {
  auto stream = stream_of({});
  stream[0] = 'X';
  EXPECT_EQ(parse_error(stream),
            "not a godwit state stream: the first 8 bytes are not \"GDWTSTAT\"");
}

TEST(StateStream, UnknownFormatVersionIsRefused) {
  auto stream = stream_of({});
  stream[8] = 2;
  EXPECT_EQ(parse_error(stream),
            "state stream format version 2 is not supported (this loader reads version 1)");
}

/// Recomputes the checksum of the section record in [start, crc_at).
void reseal(std::vector<uint8_t>& stream, size_t start, size_t crc_at) {
  uint32_t crc = crc32c(std::span(stream).subspan(start, crc_at - start));
  for (int i = 0; i < 4; ++i) stream[crc_at + i] = static_cast<uint8_t>(crc >> (8 * i));
}

TEST(StateStream, DuplicateSectionIsRefused) {
  auto stream = stream_of({{{"serial", 0}, 1}, {{"serial", 1}, 1}});
  size_t second = 12 + 44;
  stream[second + 8] = 0;  // instance 1 -> 0, checksum kept valid
  reseal(stream, second, second + 8 + 16 + 16);
  EXPECT_EQ(parse_error(stream), "serial[0] at offset 56: duplicate section");
}

TEST(StateStream, WrongSectionCountInTheEndRecordIsRefused) {
  auto stream = stream_of({{{"serial", 0}, 1}});
  size_t end = stream.size() - 10;
  stream[end + 2] = 3;
  reseal(stream, end, end + 6);
  EXPECT_EQ(parse_error(stream), "state stream end record says 3 sections, 1 were read");
}

TEST(StateStream, BytesAfterTheEndAreRefused) {
  auto stream = stream_of({{{"serial", 0}, 1}});
  stream.push_back(0);
  EXPECT_EQ(parse_error(stream), "state stream: 1 bytes after the end record at offset 66");
}

TEST(StateStreamWriter, RefusesBadKindsAndDuplicates) {
  StateStreamWriter w;
  std::vector<uint8_t> payload;
  EXPECT_FALSE(w.add({"Serial", 0}, 1, payload));
  EXPECT_FALSE(w.add({"", 0}, 1, payload));
  EXPECT_FALSE(w.add({std::string(65, 'a'), 0}, 1, payload));
  ASSERT_TRUE(w.add({"virtio-mmio", 0}, 1, payload));
  auto again = w.add({"virtio-mmio", 0}, 1, payload);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "state stream: section virtio-mmio[0] written twice");
}

}  // namespace
}  // namespace godwit::migration
