// The multifd packet codec, compressor wrappers, sender and receiver; the
// layout is drawn in multifd_packet.h.
#include "migration/multifd_packet.h"

#include <zstd_errors.h>

#include <cstdio>
#include <string>

#include "base/le_bytes.h"
#include "migration/crc32c.h"
#include "snapshot/memory_file_format.h"

namespace godwit::migration::multifd {
namespace {

// Field offsets in the fixed header.
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 4;
constexpr size_t kOffFlags = 6;
constexpr size_t kOffSequence = 8;
constexpr size_t kOffRound = 16;
constexpr size_t kOffDataPages = 20;
constexpr size_t kOffZeroPages = 24;
constexpr size_t kOffPageSize = 28;
constexpr size_t kOffCodec = 32;
constexpr size_t kOffReserved = 33;
constexpr size_t kOffPayloadBytes = 36;
constexpr size_t kOffPayloadCrc = 40;
constexpr size_t kOffHeaderCrc = 44;
static_assert(kOffHeaderCrc + 4 == kPacketHeaderBytes);

constexpr size_t kGpaBytes = 8;

/// Makes `buffer` at least `size` bytes without ever shrinking it, so a
/// steady stream of packets allocates (and zero-fills) nothing.
template <typename T>
std::span<T> grow_to(std::vector<T>& buffer, size_t size) {
  if (buffer.size() < size) buffer.resize(size);
  return std::span<T>(buffer).first(size);
}

/// Writes `gpas` as little-endian u64s at `out`.
void encode_gpas(std::span<const uint64_t> gpas, uint8_t* out) {
  for (uint64_t gpa : gpas) {
    put_le(out, gpa, 8);
    out += kGpaBytes;
  }
}

/// Bytes 0..43 of the header; the header checksum is left for finish_header().
std::array<uint8_t, kPacketHeaderBytes> encode_fixed(const PacketHeader& h) {
  std::array<uint8_t, kPacketHeaderBytes> out{};
  uint8_t* p = out.data();
  put_le(p + kOffMagic, kPacketMagic, 4);
  put_le(p + kOffVersion, kPacketVersion, 2);
  put_le(p + kOffFlags, h.flags, 2);
  put_le(p + kOffSequence, h.sequence, 8);
  put_le(p + kOffRound, h.round, 4);
  put_le(p + kOffDataPages, h.data_pages, 4);
  put_le(p + kOffZeroPages, h.zero_pages, 4);
  put_le(p + kOffPageSize, kPageSize, 4);
  p[kOffCodec] = static_cast<uint8_t>(h.codec);
  put_le(p + kOffPayloadBytes, h.payload_bytes, 4);
  put_le(p + kOffPayloadCrc, h.payload_crc, 4);
  return out;
}

uint32_t compute_header_crc(std::span<const uint8_t, kPacketHeaderBytes> header_bytes,
                            std::span<const uint8_t> list_bytes) {
  return crc32c(list_bytes, crc32c(header_bytes.first(kOffHeaderCrc)));
}

void finish_header(std::array<uint8_t, kPacketHeaderBytes>& header,
                   std::span<const uint8_t> list_bytes) {
  put_le(header.data() + kOffHeaderCrc, compute_header_crc(header, list_bytes), 4);
}

bool page_aligned(uint64_t gpa) { return gpa % kPageSize == 0; }

/// Fails naming the first unaligned address of `gpas` ("data page 3 at gpa 0x1001").
Result<void> check_aligned(std::span<const uint64_t> gpas, const char* kind) {
  for (size_t i = 0; i < gpas.size(); ++i) {
    if (!page_aligned(gpas[i]))
      return fail(std::string(kind) + " page " + std::to_string(i) + " at gpa " +
                  snapshot::hex_u64(gpas[i]) + " is not page aligned");
  }
  return {};
}

std::string zstd_error(size_t code) { return ZSTD_getErrorName(code); }

}  // namespace

size_t max_payload_bytes(Codec codec, uint32_t data_pages) {
  const size_t raw = static_cast<size_t>(data_pages) * kPageSize;
  if (codec == Codec::zstd) return data_pages == 0 ? 0 : ZSTD_compressBound(raw);
  return raw;
}

std::array<uint8_t, kPacketHeaderBytes> encode_header(const PacketHeader& header,
                                                      std::span<const uint64_t> data_gpas,
                                                      std::span<const uint64_t> zero_gpas) {
  std::vector<uint8_t> lists((data_gpas.size() + zero_gpas.size()) * kGpaBytes);
  encode_gpas(data_gpas, lists.data());
  encode_gpas(zero_gpas, lists.data() + data_gpas.size() * kGpaBytes);
  auto out = encode_fixed(header);
  finish_header(out, lists);
  return out;
}

Result<PacketHeader> decode_header(std::span<const uint8_t, kPacketHeaderBytes> bytes) {
  const uint8_t* p = bytes.data();
  const auto magic = static_cast<uint32_t>(get_le(p + kOffMagic, 4));
  if (magic != kPacketMagic)
    return fail("bad magic " + snapshot::hex_u64(magic) + ": not a godwit multifd stream");
  const auto version = static_cast<uint16_t>(get_le(p + kOffVersion, 2));
  if (version != kPacketVersion)
    return fail("packet version " + std::to_string(version) + ", this build speaks version " +
                std::to_string(kPacketVersion));
  PacketHeader h;
  h.flags = static_cast<uint16_t>(get_le(p + kOffFlags, 2));
  if ((h.flags & ~kFlagSync) != 0) return fail("unknown flags " + snapshot::hex_u64(h.flags));
  if (p[kOffReserved] != 0 || p[kOffReserved + 1] != 0 || p[kOffReserved + 2] != 0)
    return fail("reserved header bytes are not zero");
  const auto page_size = static_cast<uint32_t>(get_le(p + kOffPageSize, 4));
  if (page_size != kPageSize)
    return fail("page size " + std::to_string(page_size) + ", expected " +
                std::to_string(kPageSize));
  const uint8_t codec = p[kOffCodec];
  if (codec > static_cast<uint8_t>(Codec::zstd))
    return fail("unknown codec " + std::to_string(codec));
  h.codec = static_cast<Codec>(codec);
  h.sequence = get_le(p + kOffSequence, 8);
  h.round = static_cast<uint32_t>(get_le(p + kOffRound, 4));
  h.data_pages = static_cast<uint32_t>(get_le(p + kOffDataPages, 4));
  h.zero_pages = static_cast<uint32_t>(get_le(p + kOffZeroPages, 4));
  h.payload_bytes = static_cast<uint32_t>(get_le(p + kOffPayloadBytes, 4));
  h.payload_crc = static_cast<uint32_t>(get_le(p + kOffPayloadCrc, 4));

  // 64-bit sum: two huge 32-bit counts must not wrap under the limit.
  if (uint64_t{h.data_pages} + h.zero_pages > kMaxPagesPerPacket)
    return fail(std::to_string(h.data_pages) + " data + " + std::to_string(h.zero_pages) +
                " zero pages exceed the limit of " + std::to_string(kMaxPagesPerPacket) +
                " per packet");
  if (h.sync()) {
    if (h.data_pages != 0 || h.zero_pages != 0 || h.payload_bytes != 0 || h.codec != Codec::none)
      return fail("sync packet carries pages or a payload");
    return h;
  }
  if (h.data_pages == 0 && h.zero_pages == 0) return fail("packet carries no pages");
  if (h.codec == Codec::zstd && h.data_pages == 0) return fail("zstd packet without data pages");
  const size_t limit = max_payload_bytes(h.codec, h.data_pages);
  if (h.codec == Codec::none && h.payload_bytes != limit)
    return fail("payload of " + std::to_string(h.payload_bytes) + " bytes for " +
                std::to_string(h.data_pages) + " uncompressed data pages, expected " +
                std::to_string(limit));
  if (h.codec == Codec::zstd && h.payload_bytes > limit)
    return fail("zstd payload of " + std::to_string(h.payload_bytes) + " bytes exceeds the " +
                std::to_string(limit) + " bytes zstd may need for " + std::to_string(h.data_pages) +
                " data pages");
  return h;
}

bool header_crc_matches(std::span<const uint8_t, kPacketHeaderBytes> header_bytes,
                        std::span<const uint8_t> list_bytes) {
  const auto stored = static_cast<uint32_t>(get_le(header_bytes.data() + kOffHeaderCrc, 4));
  return stored == compute_header_crc(header_bytes, list_bytes);
}

// ---------------------------------------------------------------------------
// zstd

ZstdCompressor::ZstdCompressor(int level) : cctx_(ZSTD_createCCtx()), level_(level) {
  // Only allocation can fail here; compress() reports a null context. The
  // parameters below are valid for every level parse_compression accepts.
  if (cctx_ != nullptr) {
    (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
    // The packet has its own CRC and records the page count: zstd's
    // checksum would be a second pass over the pages for nothing.
    (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 0);
    (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_contentSizeFlag, 1);
  }
}

ZstdCompressor::~ZstdCompressor() { ZSTD_freeCCtx(cctx_); }

Result<std::span<const uint8_t>> ZstdCompressor::compress(std::span<const uint8_t> in) {
  if (cctx_ == nullptr) return fail("zstd: cannot allocate a compression context");
  auto out = grow_to(out_, ZSTD_compressBound(in.size()));
  const size_t n = ZSTD_compress2(cctx_, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n))
    return fail("zstd compression of " + std::to_string(in.size()) + " bytes at level " +
                std::to_string(level_) + ": " + zstd_error(n));
  return std::span<const uint8_t>(out.first(n));
}

ZstdDecompressor::ZstdDecompressor() : dctx_(ZSTD_createDCtx()) {
  // A packet holds at most 4 MiB, so no honest frame needs a window above
  // 2^22; refusing larger ones bounds what a corrupt frame can make zstd
  // allocate. 2^23 leaves room for another compressor's choices.
  if (dctx_ != nullptr) (void)ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, 23);
}

ZstdDecompressor::~ZstdDecompressor() { ZSTD_freeDCtx(dctx_); }

Result<void> ZstdDecompressor::decompress(std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (dctx_ == nullptr) return fail("zstd: cannot allocate a decompression context");
  // ZSTD_decompressDCtx would also decode frames concatenated after the
  // first; the format says one frame, so anything after it is an error.
  const size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
  if (ZSTD_isError(frame)) return fail("zstd: not a complete zstd frame: " + zstd_error(frame));
  if (frame != in.size())
    return fail("zstd: " + std::to_string(in.size() - frame) + " bytes follow the zstd frame");
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
      declared != out.size())
    return fail("zstd: frame holds " + std::to_string(declared) + " bytes, expected " +
                std::to_string(out.size()));
  const size_t n = ZSTD_decompressDCtx(dctx_, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) {
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
      return fail("zstd: frame holds more than the " + std::to_string(out.size()) +
                  " bytes expected");
    return fail("zstd: " + zstd_error(n));
  }
  if (n != out.size())
    return fail("zstd: frame holds " + std::to_string(n) + " bytes, expected " +
                std::to_string(out.size()));
  return {};
}

// ---------------------------------------------------------------------------
// PacketSender

PacketSender::PacketSender(Connection& connection, Compression compression)
    : connection_(connection), compression_(compression) {
  if (compression_.codec == Codec::zstd) compressor_.emplace(compression_.level);
}

Result<void> PacketSender::send_pages(uint32_t round, std::span<const uint64_t> data_gpas,
                                      std::span<const uint8_t> data,
                                      std::span<const uint64_t> zero_gpas) {
  const size_t pages = data_gpas.size() + zero_gpas.size();
  if (pages > kMaxPagesPerPacket)
    return fail("multifd send: " + std::to_string(pages) + " pages exceed the limit of " +
                std::to_string(kMaxPagesPerPacket) + " per packet");
  if (pages == 0) return fail("multifd send: a packet needs at least one page");
  if (data.size() != data_gpas.size() * kPageSize)
    return fail("multifd send: " + std::to_string(data.size()) + " data bytes for " +
                std::to_string(data_gpas.size()) + " data pages");
  TRY_VOID(with_context(check_aligned(data_gpas, "data"), "multifd send"));
  TRY_VOID(with_context(check_aligned(zero_gpas, "zero"), "multifd send"));

  PacketHeader h;
  h.sequence = next_sequence_;
  h.round = round;
  h.data_pages = static_cast<uint32_t>(data_gpas.size());
  h.zero_pages = static_cast<uint32_t>(zero_gpas.size());
  std::span<const uint8_t> payload = data;
  if (compressor_ && !data.empty()) {
    auto frame = TRY(with_context(compressor_->compress(data), "multifd send"));
    // Random pages grow under zstd; raw is then both smaller and cheaper
    // for the destination.
    if (frame.size() < data.size()) {
      payload = frame;
      h.codec = Codec::zstd;
    }
  }
  h.payload_bytes = static_cast<uint32_t>(payload.size());
  h.payload_crc = crc32c(payload);
  TRY_VOID(send(h, data_gpas, zero_gpas, payload));
  raw_bytes_ += data.size();
  return {};
}

Result<void> PacketSender::send_sync(uint32_t round) {
  PacketHeader h;
  h.flags = kFlagSync;
  h.sequence = next_sequence_;
  h.round = round;
  h.payload_crc = crc32c({});
  return send(h, {}, {}, {});
}

Result<void> PacketSender::send(const PacketHeader& header, std::span<const uint64_t> data_gpas,
                                std::span<const uint64_t> zero_gpas,
                                std::span<const uint8_t> payload) {
  auto lists = grow_to(lists_, (data_gpas.size() + zero_gpas.size()) * kGpaBytes);
  encode_gpas(data_gpas, lists.data());
  encode_gpas(zero_gpas, lists.data() + data_gpas.size() * kGpaBytes);
  auto head = encode_fixed(header);
  finish_header(head, lists);

  iovec parts[3];
  size_t n = 0;
  for (std::span<const uint8_t> s :
       {std::span<const uint8_t>(head), std::span<const uint8_t>(lists), payload}) {
    if (!s.empty()) parts[n++] = {const_cast<uint8_t*>(s.data()), s.size()};
  }
  if (failure_) return fail(*failure_);
  auto sent = connection_.write_all(std::span<const iovec>(parts, n));
  if (!sent) {
    failure_ = sent.error().context("multifd send: packet " + std::to_string(header.sequence));
    return fail(*failure_);
  }
  bytes_sent_ += head.size() + lists.size() + payload.size();
  ++next_sequence_;
  return {};
}

// ---------------------------------------------------------------------------
// PacketReceiver

PacketReceiver::PacketReceiver(Connection& connection, Codec negotiated)
    : connection_(connection), negotiated_(negotiated) {}

Result<PacketReceiver::Packet> PacketReceiver::read() {
  if (failure_) return fail(*failure_);
  auto packet = read_unprefixed();
  if (!packet) {
    failure_ = packet.error().context("multifd packet " + std::to_string(next_sequence_));
    return fail(*failure_);
  }
  ++next_sequence_;
  return packet;
}

Result<PacketReceiver::Packet> PacketReceiver::read_unprefixed() {
  std::array<uint8_t, kPacketHeaderBytes> head;
  TRY_VOID(with_context(connection_.read_exact(head), "reading the header"));
  bytes_received_ += head.size();
  const PacketHeader h = TRY(decode_header(head));
  if (h.codec == Codec::zstd && negotiated_ == Codec::none)
    return fail("zstd packet on a channel negotiated without compression");

  const size_t pages = size_t{h.data_pages} + h.zero_pages;
  auto lists = grow_to(lists_, pages * kGpaBytes);
  TRY_VOID(with_context(connection_.read_exact(lists), "reading the page lists"));
  bytes_received_ += lists.size();
  if (!header_crc_matches(head, lists)) return fail("header checksum mismatch: stream corrupted");
  // Checked only once the header is known intact, so that a corrupt
  // sequence field reads as corruption, not as a lost packet.
  if (h.sequence != next_sequence_)
    return fail("sequence " + std::to_string(h.sequence) + ", expected " +
                std::to_string(next_sequence_) + ": packets lost or reordered");

  auto gpas = grow_to(gpas_, pages);
  for (size_t i = 0; i < pages; ++i) gpas[i] = get_le(lists.data() + i * kGpaBytes, 8);
  Packet packet;
  packet.header = h;
  packet.data_gpas = gpas.first(h.data_pages);
  packet.zero_gpas = gpas.subspan(h.data_pages);
  TRY_VOID(check_aligned(packet.data_gpas, "data"));
  TRY_VOID(check_aligned(packet.zero_gpas, "zero"));

  auto pages_out = grow_to(pages_, size_t{h.data_pages} * kPageSize);
  // Raw pages land directly in the page buffer; a zstd frame is kept apart
  // until its checksum is proven, then decompressed into it.
  auto payload = h.codec == Codec::none ? pages_out : grow_to(payload_, h.payload_bytes);
  TRY_VOID(with_context(connection_.read_exact(payload), "reading the payload"));
  bytes_received_ += payload.size();
  if (crc32c(payload) != h.payload_crc) return fail("payload checksum mismatch: stream corrupted");
  if (h.codec == Codec::zstd) TRY_VOID(decompressor_.decompress(payload, pages_out));
  packet.data = pages_out;
  return packet;
}

}  // namespace godwit::migration::multifd
