// The multifd packet layer (issue 6): how guest pages travel on a parallel
// migration channel. Each multifd channel is one Connection carrying a
// stream of packets from one source thread (PacketSender) to one
// destination thread (PacketReceiver). A packet carries up to 1024 pages:
// the addresses of the pages with data, the addresses of the pages that are
// all zeros (sent as addresses only), and the data pages' bytes, raw or as
// one zstd frame. A sync packet carries no pages: it marks the end of a
// dirty-sync round on this channel, so the destination knows every page of
// the round sent on it has arrived.
//
// This layer knows nothing about guest memory or the engine: it frames,
// checksums, compresses and checks. Which pages go on which channel, and
// what a round or a sync means to the engine, is decided elsewhere.
//
// One packet (version 1), every field little-endian, explicitly encoded:
//
//   offset  size  field
//        0     4  magic 0x46444D47 (bytes "GMDF")
//        4     2  version = 1
//        6     2  flags: bit 0 kFlagSync; every other bit must be 0
//        8     8  sequence: 0, 1, 2, ... per channel, sync packets included
//       16     4  round: the dirty-sync round the pages belong to
//       20     4  data_pages
//       24     4  zero_pages   (data_pages + zero_pages <= kMaxPagesPerPacket)
//       28     4  page_size = 4096
//       32     1  codec: 0 none, 1 zstd (migration::Codec)
//       33     3  reserved, 0
//       36     4  payload_bytes: the payload's size as sent
//       40     4  payload_crc: crc32c of the payload as sent
//       44     4  header_crc: crc32c of bytes 0..43, continued over both lists
//       48         data_pages x u64 guest-physical address (page aligned)
//                  zero_pages x u64 guest-physical address (page aligned)
//                  payload: codec none: the data pages, in list order
//                           (payload_bytes == data_pages * 4096);
//                           codec zstd: one zstd frame that decompresses to
//                           exactly data_pages * 4096 bytes
//                           (payload_bytes <= ZSTD_compressBound of that)
//
// A sync packet has kFlagSync, no pages, no payload and codec none. A
// packet with no data pages always has codec none.
//
// The header checksum covers the lists so that a flipped address bit is
// caught before a page is written to the wrong place; the payload has its
// own checksum (rather than zstd's) so that both codecs are checked the same
// way, before any decompression.
#pragma once

#include <sys/uio.h>
#include <zstd.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "migration/status.h"
#include "migration/transport.h"

namespace godwit::migration::multifd {

inline constexpr uint32_t kPacketMagic = 0x46444D47;  ///< "GMDF" as little-endian bytes
inline constexpr uint16_t kPacketVersion = 1;
inline constexpr size_t kPacketHeaderBytes = 48;
inline constexpr uint32_t kPageSize = 4096;
/// Most pages (data + zero) in one packet: 4 MiB of data at most.
inline constexpr uint32_t kMaxPagesPerPacket = 1024;

enum : uint16_t {
  kFlagSync = 1u << 0,  ///< end of a dirty-sync round on this channel
};

/// The decoded fixed header (magic, version, page size, reserved bytes and
/// the header checksum are implied).
struct PacketHeader {
  uint16_t flags = 0;
  uint64_t sequence = 0;
  uint32_t round = 0;
  uint32_t data_pages = 0;
  uint32_t zero_pages = 0;
  Codec codec = Codec::none;
  uint32_t payload_bytes = 0;
  uint32_t payload_crc = 0;

  [[nodiscard]] bool sync() const { return (flags & kFlagSync) != 0; }
  friend bool operator==(const PacketHeader&, const PacketHeader&) = default;
};

/// The 48 header bytes, header_crc computed over them and the two lists
/// (whose sizes must be header.data_pages and header.zero_pages).
[[nodiscard]] std::array<uint8_t, kPacketHeaderBytes> encode_header(
    const PacketHeader& header, std::span<const uint64_t> data_gpas,
    std::span<const uint64_t> zero_gpas);

/// Decodes and checks everything the header alone can prove: magic
/// ("not a godwit multifd stream"), version, flags, reserved bytes, page
/// size, codec, page counts, payload size for the codec, sync packets
/// empty. The header checksum needs the lists: check it with
/// header_crc_matches() once they are read.
[[nodiscard]] Result<PacketHeader> decode_header(
    std::span<const uint8_t, kPacketHeaderBytes> bytes);

/// Whether the header_crc stored in `header_bytes` matches its bytes 0..43
/// and `list_bytes` (the two lists as on the wire).
[[nodiscard]] bool header_crc_matches(std::span<const uint8_t, kPacketHeaderBytes> header_bytes,
                                      std::span<const uint8_t> list_bytes);

/// Largest payload a packet of `data_pages` pages may carry with `codec`.
[[nodiscard]] size_t max_payload_bytes(Codec codec, uint32_t data_pages);

/// A zstd compression context and its output buffer, both reused for every
/// call. One per sending thread (a ZSTD_CCtx is not thread safe).
class ZstdCompressor {
 public:
  /// `level`: 1..19 (ZSTD_minCLevel()..ZSTD_maxCLevel() are accepted too).
  explicit ZstdCompressor(int level);
  ~ZstdCompressor();
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;

  /// One zstd frame holding `in` (content size recorded). The span points
  /// into this object's buffer and is valid until the next compress().
  [[nodiscard]] Result<std::span<const uint8_t>> compress(std::span<const uint8_t> in);
  [[nodiscard]] int level() const { return level_; }

 private:
  ZSTD_CCtx* cctx_ = nullptr;
  int level_;
  std::vector<uint8_t> out_;  ///< grows to the largest bound seen, never shrinks
};

/// A zstd decompression context, reused for every call. One per receiving thread.
class ZstdDecompressor {
 public:
  ZstdDecompressor();
  ~ZstdDecompressor();
  ZstdDecompressor(const ZstdDecompressor&) = delete;
  ZstdDecompressor& operator=(const ZstdDecompressor&) = delete;

  /// Decompresses `in`, which must be exactly one zstd frame, into `out`,
  /// which it must fill exactly: a frame that decompresses to fewer or more
  /// bytes fails, saying how many.
  [[nodiscard]] Result<void> decompress(std::span<const uint8_t> in, std::span<uint8_t> out);

 private:
  ZSTD_DCtx* dctx_ = nullptr;
};

/// The sending half of one multifd channel. Used by one thread.
class PacketSender {
 public:
  /// `compression.codec` none sends raw pages; zstd compresses each packet's
  /// data pages at `compression.level`.
  PacketSender(Connection& connection, Compression compression);

  /// Sends one packet: the pages at `data_gpas`, whose bytes are `data`
  /// (data_gpas.size() * 4096 bytes, the pages in list order, in a buffer
  /// the caller owns and nobody modifies until this returns), and the zero
  /// pages at `zero_gpas`. With zstd, a packet whose frame is not smaller
  /// than the raw pages (random data) goes as codec none. Refuses more than
  /// kMaxPagesPerPacket pages, a `data` of the wrong size, no pages at all
  /// and unaligned addresses (nothing is sent then). Header, lists and
  /// payload go in one writev; once a write failed (the stream may end
  /// mid-packet) every later send fails with that error.
  [[nodiscard]] Result<void> send_pages(uint32_t round, std::span<const uint64_t> data_gpas,
                                        std::span<const uint8_t> data,
                                        std::span<const uint64_t> zero_gpas);
  /// Sends a sync packet for `round`.
  [[nodiscard]] Result<void> send_sync(uint32_t round);

  /// Bytes written to the connection (headers, lists and payloads).
  [[nodiscard]] uint64_t bytes_sent() const { return bytes_sent_; }
  /// Data page bytes before compression (sum of data_pages * 4096).
  [[nodiscard]] uint64_t raw_bytes() const { return raw_bytes_; }
  /// Packets sent, sync packets included (the next sequence number).
  [[nodiscard]] uint64_t packets() const { return next_sequence_; }

 private:
  [[nodiscard]] Result<void> send(const PacketHeader& header, std::span<const uint64_t> data_gpas,
                                  std::span<const uint64_t> zero_gpas,
                                  std::span<const uint8_t> payload);

  Connection& connection_;
  Compression compression_;
  std::optional<ZstdCompressor> compressor_;  ///< set when compressing
  std::vector<uint8_t> lists_;                ///< encoded gpa lists, reused
  std::optional<Error> failure_;              ///< a write failed: the stream is cut mid-packet
  uint64_t next_sequence_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t raw_bytes_ = 0;
};

/// The receiving half of one multifd channel. Used by one thread.
class PacketReceiver {
 public:
  /// One received packet. Its spans point into the receiver's buffers and
  /// are valid until the next read().
  struct Packet {
    PacketHeader header;
    std::span<const uint64_t> data_gpas;
    std::span<const uint8_t> data;  ///< data_gpas.size() * 4096 bytes, uncompressed
    std::span<const uint64_t> zero_gpas;

    [[nodiscard]] bool sync() const { return header.sync(); }
  };

  /// `negotiated`: the channel's codec. A zstd packet on a channel
  /// negotiated as none is an error; a zstd channel also accepts codec none
  /// packets (incompressible pages).
  PacketReceiver(Connection& connection, Codec negotiated);

  /// Reads exactly one packet and checks, in this order: the header
  /// (decode_header), the codec against the negotiated one, the header
  /// checksum (over the lists too), the sequence number (the next one
  /// expected, so a lost or repeated packet is caught), every address page
  /// aligned, the payload checksum, then decompresses. Errors start with
  /// "multifd packet N: " where N is the sequence number expected; e.g.
  /// "multifd packet 16: sequence 17, expected 16: packets lost or
  /// reordered", "multifd packet 3: payload checksum mismatch: stream
  /// corrupted". Buffers are reused: no allocation once the largest packet
  /// has been seen. After a failure the stream position is unknown, so
  /// every later read() returns the same error.
  [[nodiscard]] Result<Packet> read();

  /// Bytes read from the connection.
  [[nodiscard]] uint64_t bytes_received() const { return bytes_received_; }
  /// Packets read and accepted (the next sequence number expected).
  [[nodiscard]] uint64_t packets() const { return next_sequence_; }

 private:
  [[nodiscard]] Result<Packet> read_unprefixed();

  Connection& connection_;
  Codec negotiated_;
  ZstdDecompressor decompressor_;
  std::vector<uint8_t> lists_;    ///< the lists as on the wire
  std::vector<uint64_t> gpas_;    ///< decoded: data gpas, then zero gpas
  std::vector<uint8_t> payload_;  ///< a zstd payload as received
  std::vector<uint8_t> pages_;    ///< data pages, uncompressed
  std::optional<Error> failure_;  ///< the first failed read: the stream position is lost
  uint64_t next_sequence_ = 0;
  uint64_t bytes_received_ = 0;
};

}  // namespace godwit::migration::multifd
