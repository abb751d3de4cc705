// The multifd packet layer (issue 6) over a socketpair: round trips of both
// codecs with zero, random and text pages, sync packets, golden header
// bytes, every header refusal, sequence gaps, bit flips anywhere in a
// packet, codec negotiation, incompressible pages sent raw, limits,
// alignment, zstd size mismatches and truncated streams.
#include "migration/multifd_packet.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "migration/crc32c.h"
#include "migration_socket_pair.h"

namespace godwit::migration::multifd {
namespace {

using Bytes = std::vector<uint8_t>;

using test::Pair;
using test::socket_pair;

std::string error_of(const auto& result) {
  return result ? std::string("(succeeded)") : result.error().message;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Everything `send` writes with a sender of `compression`, read from the
/// other end until EOF (a thread writes, so packets larger than the socket
/// buffer work).
Bytes capture(Compression compression, const std::function<void(PacketSender&)>& send) {
  auto p = socket_pair();
  std::thread writer([&] {
    PacketSender sender(p.a, compression);
    send(sender);
    p.a = Connection();  // close: the reader sees EOF
  });
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(p.b.fd(), buf, sizeof buf);
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  writer.join();
  return out;
}

/// What a test keeps of a received packet (the receiver's spans do not
/// outlive the next read).
struct Received {
  PacketHeader header;
  std::vector<uint64_t> data_gpas;
  Bytes data;
  std::vector<uint64_t> zero_gpas;
};

/// Feeds `raw` to a receiver negotiated for `codec` and reads `count`
/// packets; the first failure ends it.
Result<std::vector<Received>> receive(const Bytes& raw, Codec codec, size_t count = 1) {
  auto p = socket_pair();
  std::thread writer([&] {
    (void)p.a.write_all(std::span<const uint8_t>(raw));
    p.a = Connection();
  });
  PacketReceiver receiver(p.b, codec);
  std::vector<Received> got;
  Result<std::vector<Received>> result;
  for (size_t i = 0; i < count; ++i) {
    auto packet = receiver.read();
    if (!packet) {
      result = fail(packet.error());
      break;
    }
    got.push_back({packet->header,
                   {packet->data_gpas.begin(), packet->data_gpas.end()},
                   {packet->data.begin(), packet->data.end()},
                   {packet->zero_gpas.begin(), packet->zero_gpas.end()}});
  }
  if (result) result = std::move(got);
  // Unblock the writer if the receiver stopped early.
  p.b.shutdown();
  writer.join();
  return result;
}

Bytes zero_pages(size_t pages) { return Bytes(pages * kPageSize, 0); }

Bytes random_pages(size_t pages, uint32_t seed = 1) {
  std::mt19937_64 rng(seed);
  Bytes out(pages * kPageSize);
  for (size_t i = 0; i < out.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

/// Compressible but not trivial: numbered lines of text.
Bytes text_pages(size_t pages) {
  std::string text;
  for (int line = 0; text.size() < pages * kPageSize; ++line)
    text += "line " + std::to_string(line) + ": the quick brown fox jumps over the lazy dog " +
            std::to_string(line * 7919 % 1000) + "\n";
  return Bytes(text.begin(), text.begin() + static_cast<long>(pages * kPageSize));
}

std::vector<uint64_t> gpas_from(uint64_t first_gpa, size_t pages, uint64_t stride = kPageSize) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < pages; ++i) out.push_back(first_gpa + i * stride);
  return out;
}

void put_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

/// A packet built by hand, for what a PacketSender refuses to send.
/// header.payload_bytes and payload_crc are filled from `payload` unless
/// `keep_payload_fields`.
Bytes build_packet(PacketHeader header, const std::vector<uint64_t>& data_gpas,
                   const std::vector<uint64_t>& zero_gpas, const Bytes& payload,
                   bool keep_payload_fields = false) {
  if (!keep_payload_fields) {
    header.payload_bytes = static_cast<uint32_t>(payload.size());
    header.payload_crc = crc32c(payload);
  }
  auto head = encode_header(header, data_gpas, zero_gpas);
  Bytes out(head.begin(), head.end());
  for (uint64_t gpa : data_gpas) put_u64(out, gpa);
  for (uint64_t gpa : zero_gpas) put_u64(out, gpa);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

/// The header bytes of `header`, for decode_header tests (lists empty).
std::array<uint8_t, kPacketHeaderBytes> header_bytes(const PacketHeader& header) {
  return encode_header(header, {}, {});
}

PacketHeader raw_header(uint32_t data_pages, uint32_t zero_pages) {
  PacketHeader h;
  h.data_pages = data_pages;
  h.zero_pages = zero_pages;
  h.payload_bytes = data_pages * kPageSize;
  return h;
}

const Compression kNone{Codec::none, 1};
const Compression kZstd{Codec::zstd, 1};

// ---------------------------------------------------------------------------
// Header encoding

TEST(MultifdHeader, GoldenBytes) {
  PacketHeader h;
  h.flags = 0;
  h.sequence = 0x0102030405060708ull;
  h.round = 9;
  h.data_pages = 2;
  h.zero_pages = 1;
  h.codec = Codec::zstd;
  h.payload_bytes = 0x1234;
  h.payload_crc = 0xAABBCCDD;
  const std::vector<uint64_t> data = {0x1000, 0x100000000ull};
  const std::vector<uint64_t> zero = {0x3000};
  auto bytes = encode_header(h, data, zero);
  const Bytes expected_fixed = {
      'G',  'M',  'D',  'F',                           // magic
      1,    0,                                         // version
      0,    0,                                         // flags
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // sequence
      9,    0,    0,    0,                             // round
      2,    0,    0,    0,                             // data pages
      1,    0,    0,    0,                             // zero pages
      0,    0x10, 0,    0,                             // page size 4096
      1,    0,    0,    0,                             // codec zstd, reserved
      0x34, 0x12, 0,    0,                             // payload bytes
      0xDD, 0xCC, 0xBB, 0xAA,                          // payload crc
  };
  ASSERT_EQ(Bytes(bytes.begin(), bytes.begin() + 44), expected_fixed);
  // The header checksum continues over the lists as little-endian u64s.
  Bytes lists;
  put_u64(lists, 0x1000);
  put_u64(lists, 0x100000000ull);
  put_u64(lists, 0x3000);
  const uint32_t crc = crc32c(lists, crc32c(std::span(bytes).first(44)));
  EXPECT_EQ(Bytes(bytes.begin() + 44, bytes.end()),
            (Bytes{static_cast<uint8_t>(crc), static_cast<uint8_t>(crc >> 8),
                   static_cast<uint8_t>(crc >> 16), static_cast<uint8_t>(crc >> 24)}));
  EXPECT_TRUE(header_crc_matches(bytes, lists));
  lists[9] ^= 0x40;
  EXPECT_FALSE(header_crc_matches(bytes, lists));

  auto decoded = decode_header(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, h);
}

TEST(MultifdHeader, SyncHeaderRoundTrips) {
  PacketHeader h;
  h.flags = kFlagSync;
  h.sequence = 5;
  h.round = 3;
  auto decoded = decode_header(header_bytes(h));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, h);
  EXPECT_TRUE(decoded->sync());
}

TEST(MultifdHeader, RefusesWhatTheHeaderAloneProvesWrong) {
  auto with = [](size_t offset, uint8_t value) {
    auto bytes = header_bytes(raw_header(1, 0));
    bytes[offset] = value;
    return error_of(decode_header(bytes));
  };
  EXPECT_EQ(with(0, 'X'), "bad magic 0x46444d58: not a godwit multifd stream");
  EXPECT_EQ(with(4, 2), "packet version 2, this build speaks version 1");
  EXPECT_EQ(with(6, 0x02), "unknown flags 0x2");
  EXPECT_EQ(with(7, 0x80), "unknown flags 0x8000");
  EXPECT_EQ(with(33, 1), "reserved header bytes are not zero");
  EXPECT_EQ(with(35, 1), "reserved header bytes are not zero");
  EXPECT_EQ(with(29, 0x20), "page size 8192, expected 4096");
  EXPECT_EQ(with(32, 2), "unknown codec 2");

  PacketHeader sync;
  sync.flags = kFlagSync;
  sync.zero_pages = 1;
  EXPECT_EQ(error_of(decode_header(header_bytes(sync))), "sync packet carries pages or a payload");
  sync.zero_pages = 0;
  sync.codec = Codec::zstd;
  EXPECT_EQ(error_of(decode_header(header_bytes(sync))), "sync packet carries pages or a payload");

  EXPECT_EQ(error_of(decode_header(header_bytes(raw_header(0, 0)))), "packet carries no pages");
  PacketHeader short_payload = raw_header(2, 0);
  short_payload.payload_bytes = kPageSize;
  EXPECT_EQ(error_of(decode_header(header_bytes(short_payload))),
            "payload of 4096 bytes for 2 uncompressed data pages, expected 8192");
  PacketHeader zstd_zero_only = raw_header(0, 3);
  zstd_zero_only.codec = Codec::zstd;
  EXPECT_EQ(error_of(decode_header(header_bytes(zstd_zero_only))),
            "zstd packet without data pages");
  PacketHeader zstd_big = raw_header(1, 0);
  zstd_big.codec = Codec::zstd;
  zstd_big.payload_bytes = static_cast<uint32_t>(ZSTD_compressBound(kPageSize));
  EXPECT_TRUE(decode_header(header_bytes(zstd_big)));
  ++zstd_big.payload_bytes;
  EXPECT_TRUE(contains(error_of(decode_header(header_bytes(zstd_big))), "exceeds the"));
}

TEST(MultifdHeader, CountsOverTheLimitAreRefused) {
  EXPECT_TRUE(decode_header(header_bytes(raw_header(1000, 24))));
  EXPECT_EQ(error_of(decode_header(header_bytes(raw_header(1000, 25)))),
            "1000 data + 25 zero pages exceed the limit of 1024 per packet");
  // Two counts whose 32-bit sum wraps to a small number.
  PacketHeader wrap = raw_header(0, 0xFFFFFFFFu);
  wrap.data_pages = 2;
  wrap.payload_bytes = 2 * kPageSize;
  EXPECT_TRUE(contains(error_of(decode_header(header_bytes(wrap))), "exceed the limit"));

  auto p = socket_pair();
  PacketSender sender(p.a, kNone);
  const auto gpas = gpas_from(0, 1025);
  EXPECT_EQ(error_of(sender.send_pages(0, {}, {}, gpas)),
            "multifd send: 1025 pages exceed the limit of 1024 per packet");
  const Bytes data = zero_pages(1000);
  EXPECT_TRUE(contains(error_of(sender.send_pages(0, std::span(gpas).first(1000), data,
                                                  std::span(gpas).subspan(1000))),
                       "exceed the limit"));
  EXPECT_EQ(sender.packets(), 0u);
  EXPECT_EQ(sender.bytes_sent(), 0u);
}

// ---------------------------------------------------------------------------
// Round trips

struct RoundTripCase {
  const char* name;
  Compression compression;
  std::function<Bytes(size_t)> pages;
  Codec expected_codec;  ///< what the packets should travel as
};

TEST(MultifdRoundTrip, EveryCodecAndKindOfData) {
  const std::vector<RoundTripCase> cases = {
      {"none/zeros", kNone, zero_pages, Codec::none},
      {"none/random", kNone, [](size_t n) { return random_pages(n); }, Codec::none},
      {"none/text", kNone, text_pages, Codec::none},
      {"zstd/zeros", kZstd, zero_pages, Codec::zstd},
      {"zstd/random", kZstd, [](size_t n) { return random_pages(n); }, Codec::none},
      {"zstd/text", kZstd, text_pages, Codec::zstd},
      {"zstd:19/text", Compression{Codec::zstd, 19}, text_pages, Codec::zstd},
  };
  for (const RoundTripCase& c : cases) {
    SCOPED_TRACE(c.name);
    // Packets of 128 and 1 data pages (larger than the socket buffer, and
    // the smallest), one with zero pages only and one with both.
    const Bytes big = c.pages(128);
    const Bytes one = c.pages(1);
    const auto big_gpas = gpas_from(1ull << 32, 128);
    const std::vector<uint64_t> one_gpa = {0x7000};
    const auto zeros = gpas_from(0x100000, 5, 2 * kPageSize);
    uint64_t sent = 0, raw = 0;
    const Bytes stream = capture(c.compression, [&](PacketSender& s) {
      EXPECT_TRUE(s.send_pages(1, big_gpas, big, {}));
      EXPECT_TRUE(s.send_pages(1, one_gpa, one, zeros));
      EXPECT_TRUE(s.send_pages(2, {}, {}, zeros));
      EXPECT_TRUE(s.send_sync(2));
      sent = s.bytes_sent();
      raw = s.raw_bytes();
      EXPECT_EQ(s.packets(), 4u);
    });
    EXPECT_EQ(stream.size(), sent);
    EXPECT_EQ(raw, 129u * kPageSize);
    if (c.expected_codec == Codec::zstd) {
      EXPECT_LT(sent, raw);
    }

    auto got = receive(stream, c.compression.codec, 4);
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->size(), 4u);
    const auto& p = *got;
    EXPECT_EQ(p[0].header.sequence, 0u);
    EXPECT_EQ(p[0].header.round, 1u);
    EXPECT_EQ(p[0].header.codec, c.expected_codec);
    EXPECT_EQ(p[0].data_gpas, big_gpas);
    EXPECT_TRUE(p[0].data == big);
    EXPECT_TRUE(p[0].zero_gpas.empty());
    EXPECT_EQ(p[1].header.sequence, 1u);
    EXPECT_EQ(p[1].data_gpas, one_gpa);
    EXPECT_TRUE(p[1].data == one);
    EXPECT_EQ(p[1].zero_gpas, zeros);
    EXPECT_EQ(p[2].header.round, 2u);
    EXPECT_EQ(p[2].header.codec, Codec::none);  // no data pages: nothing to compress
    EXPECT_TRUE(p[2].data_gpas.empty());
    EXPECT_TRUE(p[2].data.empty());
    EXPECT_EQ(p[2].zero_gpas, zeros);
    EXPECT_TRUE(p[3].header.sync());
    EXPECT_EQ(p[3].header.sequence, 3u);
  }
}

TEST(MultifdRoundTrip, IncompressiblePagesGoRaw) {
  const Bytes data = random_pages(16, 7);
  const auto gpas = gpas_from(0, 16);
  uint64_t sent = 0;
  const Bytes stream = capture(kZstd, [&](PacketSender& s) {
    EXPECT_TRUE(s.send_pages(0, gpas, data, {}));
    sent = s.bytes_sent();
  });
  // Exactly the raw layout: header, 16 addresses, 16 pages.
  EXPECT_EQ(sent, kPacketHeaderBytes + 16 * 8 + data.size());
  auto header = decode_header(std::span(stream).first<kPacketHeaderBytes>());
  ASSERT_TRUE(header);
  EXPECT_EQ(header->codec, Codec::none);
  EXPECT_EQ(header->payload_bytes, data.size());
  // A none channel accepts it too: nothing zstd about it.
  auto got = receive(stream, Codec::none);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE((*got)[0].data == data);
}

TEST(MultifdRoundTrip, SyncPacketsCarryTheRoundAndTakeASequenceNumber) {
  const Bytes page = text_pages(1);
  const std::vector<uint64_t> gpa = {0x2000};
  const Bytes stream = capture(kZstd, [&](PacketSender& s) {
    EXPECT_TRUE(s.send_sync(0));
    EXPECT_TRUE(s.send_pages(1, gpa, page, {}));
    EXPECT_TRUE(s.send_sync(1));
    EXPECT_TRUE(s.send_sync(2));
    EXPECT_EQ(s.raw_bytes(), kPageSize);
  });
  auto got = receive(stream, Codec::zstd, 4);
  ASSERT_TRUE(got) << got.error().message;
  const std::vector<std::pair<bool, uint32_t>> expected = {
      {true, 0}, {false, 1}, {true, 1}, {true, 2}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*got)[i].header.sync(), expected[i].first) << i;
    EXPECT_EQ((*got)[i].header.round, expected[i].second) << i;
    EXPECT_EQ((*got)[i].header.sequence, i);
  }
  EXPECT_TRUE((*got)[2].data_gpas.empty() && (*got)[2].zero_gpas.empty());
  EXPECT_EQ(stream.size(),
            3 * kPacketHeaderBytes + (*got)[1].header.payload_bytes + kPacketHeaderBytes + 8);
}

TEST(MultifdRoundTrip, CountersAgreeOnBothSides) {
  const Bytes data = text_pages(64);
  const auto gpas = gpas_from(0, 64);
  auto p = socket_pair();
  PacketSender sender(p.a, kZstd);
  std::thread writer([&] {
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(sender.send_pages(0, gpas, data, {}));
    EXPECT_TRUE(sender.send_sync(0));
  });
  PacketReceiver receiver(p.b, Codec::zstd);
  for (int i = 0; i < 11; ++i) ASSERT_TRUE(receiver.read());
  writer.join();
  EXPECT_EQ(receiver.bytes_received(), sender.bytes_sent());
  EXPECT_EQ(receiver.packets(), 11u);
  EXPECT_EQ(sender.packets(), 11u);
  EXPECT_EQ(sender.raw_bytes(), 10u * data.size());
}

TEST(MultifdRoundTrip, ReceiverReusesItsPageBuffer) {
  const Bytes data = random_pages(32);
  const auto gpas = gpas_from(0, 32);
  const Bytes stream = capture(kNone, [&](PacketSender& s) {
    EXPECT_TRUE(s.send_pages(0, gpas, data, {}));
    EXPECT_TRUE(
        s.send_pages(0, std::span(gpas).first(8), std::span(data).first(8 * kPageSize), {}));
    EXPECT_TRUE(s.send_pages(0, gpas, data, {}));
  });
  auto p = socket_pair();
  // More than a socket buffer holds: written by another thread.
  std::thread writer([&] { (void)p.a.write_all(std::span<const uint8_t>(stream)); });
  PacketReceiver receiver(p.b, Codec::none);
  std::vector<const uint8_t*> pages;
  std::vector<const uint64_t*> addresses;
  for (int i = 0; i < 3; ++i) {
    auto packet = receiver.read();
    EXPECT_TRUE(packet) << error_of(packet);
    if (!packet) break;
    pages.push_back(packet->data.data());
    addresses.push_back(packet->data_gpas.data());
  }
  p.b.shutdown();  // unblocks the writer if a read failed
  writer.join();
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[1], pages[0]);
  EXPECT_EQ(pages[2], pages[0]);
  EXPECT_EQ(addresses[1], addresses[0]);
  EXPECT_EQ(addresses[2], addresses[0]);
}

// ---------------------------------------------------------------------------
// Refusals on the receiving side

TEST(MultifdReceive, SequenceGapAndRepeatAreDetected) {
  const Bytes page = text_pages(1);
  const std::vector<uint64_t> gpa = {0};
  std::vector<Bytes> packets;
  const Bytes stream = capture(kNone, [&](PacketSender& s) {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(s.send_pages(0, gpa, page, {}));
  });
  const size_t size = stream.size() / 3;
  for (size_t i = 0; i < 3; ++i)
    packets.emplace_back(stream.begin() + static_cast<long>(i * size),
                         stream.begin() + static_cast<long>((i + 1) * size));

  Bytes lost = packets[0];
  lost.insert(lost.end(), packets[2].begin(), packets[2].end());
  EXPECT_EQ(error_of(receive(lost, Codec::none, 2)),
            "multifd packet 1: sequence 2, expected 1: packets lost or reordered");
  Bytes repeated = packets[0];
  repeated.insert(repeated.end(), packets[0].begin(), packets[0].end());
  EXPECT_EQ(error_of(receive(repeated, Codec::none, 2)),
            "multifd packet 1: sequence 0, expected 1: packets lost or reordered");
  EXPECT_EQ(error_of(receive(packets[1], Codec::none)),
            "multifd packet 0: sequence 1, expected 0: packets lost or reordered");
}

TEST(MultifdReceive, BitFlipAnywhereIsDetected) {
  const Bytes data = text_pages(2);
  const std::vector<uint64_t> data_gpas = {0x10000, 0x4000};
  const std::vector<uint64_t> zero_gpas = {0x8000};
  for (Compression compression : {kNone, kZstd}) {
    SCOPED_TRACE(to_string(compression));
    const Bytes original = capture(compression, [&](PacketSender& s) {
      EXPECT_TRUE(s.send_pages(4, data_gpas, data, zero_gpas));
    });
    ASSERT_TRUE(receive(original, compression.codec));
    const size_t lists_end = kPacketHeaderBytes + 3 * 8;
    for (size_t i = 0; i < original.size(); ++i) {
      // Every bit of the header and lists; one bit of each payload byte
      // (a different one each time) keeps the test fast.
      for (int bit = 0; bit < 8; ++bit) {
        if (i >= lists_end && bit != static_cast<int>(i % 8)) continue;
        Bytes flipped = original;
        flipped[i] ^= static_cast<uint8_t>(1u << bit);
        const std::string err = error_of(receive(flipped, compression.codec));
        ASSERT_NE(err, "(succeeded)") << "flip of bit " << bit << " of byte " << i;
        EXPECT_TRUE(contains(err, "multifd packet 0: ")) << err;
        if (i >= kPacketHeaderBytes - 4 && i < lists_end) {
          // The stored header checksum and the lists.
          EXPECT_EQ(err, "multifd packet 0: header checksum mismatch: stream corrupted");
        } else if (i >= lists_end) {
          EXPECT_EQ(err, "multifd packet 0: payload checksum mismatch: stream corrupted");
        }
      }
    }
  }
}

TEST(MultifdReceive, ZstdPacketOnANoneChannelIsRefused) {
  const Bytes data = zero_pages(4);
  const auto gpas = gpas_from(0, 4);
  const Bytes stream =
      capture(kZstd, [&](PacketSender& s) { EXPECT_TRUE(s.send_pages(0, gpas, data, {})); });
  EXPECT_EQ(error_of(receive(stream, Codec::none)),
            "multifd packet 0: zstd packet on a channel negotiated without compression");
  EXPECT_TRUE(receive(stream, Codec::zstd));
}

TEST(MultifdReceive, UnalignedAddressesAreRefused) {
  const Bytes page = text_pages(1);
  EXPECT_EQ(error_of(receive(build_packet(raw_header(1, 0), {0x1001}, {}, page), Codec::none)),
            "multifd packet 0: data page 0 at gpa 0x1001 is not page aligned");
  EXPECT_EQ(error_of(receive(build_packet(raw_header(1, 2), {0x1000}, {0x2000, 0x3800}, page),
                             Codec::none)),
            "multifd packet 0: zero page 1 at gpa 0x3800 is not page aligned");

  auto p = socket_pair();
  PacketSender sender(p.a, kNone);
  const std::vector<uint64_t> bad = {0x2000, 0x2010};
  EXPECT_EQ(error_of(sender.send_pages(0, {}, {}, bad)),
            "multifd send: zero page 1 at gpa 0x2010 is not page aligned");
  EXPECT_EQ(error_of(sender.send_pages(0, std::span(bad).subspan(1), page, {})),
            "multifd send: data page 0 at gpa 0x2010 is not page aligned");
  EXPECT_EQ(sender.packets(), 0u);
}

TEST(MultifdReceive, ZstdFrameOfTheWrongSizeIsRefused) {
  // A valid frame of 1 page in a packet that says 2 data pages.
  const Bytes one = text_pages(1);
  Bytes frame(ZSTD_compressBound(one.size()));
  frame.resize(ZSTD_compress(frame.data(), frame.size(), one.data(), one.size(), 1));
  PacketHeader h = raw_header(2, 0);
  h.codec = Codec::zstd;
  EXPECT_EQ(error_of(receive(build_packet(h, {0, 0x1000}, {}, frame), Codec::zstd)),
            "multifd packet 0: zstd: frame holds 4096 bytes, expected 8192");
  // Two frames back to back: the format allows one.
  Bytes two = frame;
  two.insert(two.end(), frame.begin(), frame.end());
  EXPECT_EQ(
      error_of(receive(build_packet(h, {0, 0x1000}, {}, two), Codec::zstd)),
      "multifd packet 0: zstd: " + std::to_string(frame.size()) + " bytes follow the zstd frame");
  // Garbage with a correct checksum.
  EXPECT_TRUE(
      contains(error_of(receive(build_packet(h, {0, 0x1000}, {}, Bytes(100, 0x5A)), Codec::zstd)),
               "multifd packet 0: zstd: "));
}

TEST(MultifdReceive, TruncatedStreamFailsSayingWhere) {
  const Bytes data = text_pages(2);
  const std::vector<uint64_t> gpas = {0, 0x1000};
  const Bytes packet =
      capture(kNone, [&](PacketSender& s) { EXPECT_TRUE(s.send_pages(0, gpas, data, {})); });
  EXPECT_EQ(error_of(receive({}, Codec::none)),
            "multifd packet 0: reading the header: end-b: connection closed by peer");
  EXPECT_EQ(error_of(receive(Bytes(packet.begin(), packet.begin() + 20), Codec::none)),
            "multifd packet 0: reading the header: end-b: connection closed by peer after 20 of "
            "48 bytes");
  EXPECT_EQ(error_of(receive(Bytes(packet.begin(), packet.begin() + 50), Codec::none)),
            "multifd packet 0: reading the page lists: end-b: connection closed by peer after 2 "
            "of 16 bytes");
  EXPECT_EQ(error_of(receive(Bytes(packet.begin(), packet.end() - 1), Codec::none)),
            "multifd packet 0: reading the payload: end-b: connection closed by peer after 8191 "
            "of 8192 bytes");
  for (size_t n = 1; n < packet.size(); n += 97) {
    const std::string err = error_of(
        receive(Bytes(packet.begin(), packet.begin() + static_cast<long>(n)), Codec::none));
    EXPECT_TRUE(contains(err, "connection closed by peer")) << n << ": " << err;
  }
  // A clean end between packets reads as the peer closing before the next.
  Bytes two = packet;
  EXPECT_EQ(error_of(receive(two, Codec::none, 2)),
            "multifd packet 1: reading the header: end-b: connection closed by peer");
}

TEST(MultifdReceive, AFailureSticks) {
  Bytes garbage(kPacketHeaderBytes * 2, 0x11);
  auto p = socket_pair();
  ASSERT_TRUE(p.a.write_all(std::span<const uint8_t>(garbage)));
  PacketReceiver receiver(p.b, Codec::none);
  const std::string first = error_of(receiver.read());
  EXPECT_EQ(first, "multifd packet 0: bad magic 0x11111111: not a godwit multifd stream");
  // The second header's bytes are there, but the stream position is lost.
  EXPECT_EQ(error_of(receiver.read()), first);
}

// ---------------------------------------------------------------------------
// The sender's own refusals and the zstd wrappers

TEST(MultifdSend, RefusesEmptyPacketsAndDataOfTheWrongSize) {
  auto p = socket_pair();
  PacketSender sender(p.a, kZstd);
  EXPECT_EQ(error_of(sender.send_pages(0, {}, {}, {})),
            "multifd send: a packet needs at least one page");
  const std::vector<uint64_t> gpas = {0, 0x1000};
  const Bytes data = text_pages(1);
  EXPECT_EQ(error_of(sender.send_pages(0, gpas, data, {})),
            "multifd send: 4096 data bytes for 2 data pages");
  EXPECT_EQ(sender.bytes_sent(), 0u);
}

TEST(MultifdSend, AWriteFailureSticks) {
  auto p = socket_pair();
  PacketSender sender(p.a, kNone);
  p.b = Connection();
  const std::string first = error_of(sender.send_sync(0));
  EXPECT_TRUE(contains(first, "multifd send: packet 0: end-a: connection closed by peer")) << first;
  EXPECT_EQ(error_of(sender.send_sync(0)), first);
  EXPECT_EQ(sender.packets(), 0u);
}

TEST(Zstd, RoundTripAndExactSizeRequired) {
  ZstdCompressor compressor(3);
  ZstdDecompressor decompressor;
  const Bytes data = text_pages(8);
  auto frame = compressor.compress(data);
  ASSERT_TRUE(frame) << frame.error().message;
  const Bytes copy(frame->begin(), frame->end());
  EXPECT_LT(copy.size(), data.size());

  Bytes out(data.size());
  ASSERT_TRUE(decompressor.decompress(copy, out));
  EXPECT_TRUE(out == data);
  Bytes small(data.size() - 1), large(data.size() + 1);
  EXPECT_EQ(error_of(decompressor.decompress(copy, small)),
            "zstd: frame holds 32768 bytes, expected 32767");
  EXPECT_EQ(error_of(decompressor.decompress(copy, large)),
            "zstd: frame holds 32768 bytes, expected 32769");
  EXPECT_TRUE(
      contains(error_of(decompressor.decompress(std::span(copy).first(copy.size() - 1), out)),
               "zstd: not a complete zstd frame"));
  // The context is reusable after a failure.
  std::fill(out.begin(), out.end(), 0);
  ASSERT_TRUE(decompressor.decompress(copy, out));
  EXPECT_TRUE(out == data);
}

TEST(Zstd, CompressorReusesItsBufferAndAcceptsEmptyInput) {
  ZstdCompressor compressor(1);
  const Bytes data = text_pages(4);
  auto a = compressor.compress(data);
  ASSERT_TRUE(a);
  const uint8_t* where = a->data();
  auto b = compressor.compress(std::span(data).first(kPageSize));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->data(), where);
  auto empty = compressor.compress({});
  ASSERT_TRUE(empty);
  ZstdDecompressor decompressor;
  EXPECT_TRUE(decompressor.decompress(*empty, {}));
}

}  // namespace
}  // namespace godwit::migration::multifd
