// libFuzzer target over the live-migration parsers a destination runs on
// bytes from an untrusted peer: the wire hello and frame payload decoders
// (migration/wire.h), the multifd packet layer (migration/multifd_packet.h)
// reading a real socket, and the RAM section and multifd page loaders
// (migration/ram_migratable.h) writing into a small memfd guest RAM.
//
// Input layout: byte 0 selects the parser (mod 6), byte 1 holds flags, the
// rest is the parser's input:
//   0 frame:     type u16 | payload. Every payload decoder and the
//                return-path check run on it (each refuses other types); a
//                decoded SECTION of kind "ram" is loaded into RAM.
//   1 hello:     37 bytes. Flag bit 0: recompute the checksum first.
//   2 multifd:   a packet stream. decode_header() on its first 48 bytes,
//                then the whole stream is written into a socketpair (write
//                end closed) and read by a PacketReceiver until it fails;
//                accepted packets are loaded with load_pages(). Flag bit 0:
//                the channel was negotiated as zstd (else none). Bit 1:
//                recompute both checksums and the sequence number of every
//                packet first, so mutations reach the checks behind them;
//                bit 2 then keeps the sequence numbers as they are.
//   3 ram:       a RAM section payload for RamMigratable::load(). Flag bit
//                0: claim version 2 (unsupported) instead of 1.
//   4 pages:     data count u8 | zero count u8 | the gpas, u64 each | page
//                data, for RamMigratable::load_pages(). Flag bit 0: pass
//                exactly count * 4096 data bytes (else all that is left).
//   5 main:      the main channel as the destination reads it from a
//                socketpair: the peer's hello (receive_hello), then frames
//                (FrameReader) until the stream fails, each frame through
//                every decoder as in 0. Flag bit 1: recompute the hello and
//                frame checksums first.
//
// Besides the sanitizers, the target traps when a documented property
// breaks: a decoded message re-encodes to the same bytes; an accepted packet
// is consistent with its header and a failed receiver keeps failing; a load
// that fails changed nothing (no page marked dirty), one that succeeds
// wrote exactly the bytes of the input and marked every page it wrote.
//
// GODWIT_FUZZ_VERBOSE=1 prints what each parser said (to check that a seed
// is accepted, or to read a reproducer): migration_fuzzer FILE...
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/le_bytes.h"
#include "memory/guest_memory.h"
#include "migration/crc32c.h"
#include "migration/multifd_packet.h"
#include "migration/ram_migratable.h"
#include "migration/section.h"
#include "migration/transport.h"
#include "migration/wire.h"

namespace {

using namespace godwit;
using namespace godwit::migration;

constexpr uint64_t kRamBytes = 1 << 20;
constexpr uint64_t kRamPages = kRamBytes / kPageSize;
constexpr int kMaxPackets = 64;
constexpr int kMaxFrames = 64;
constexpr uint64_t kLargeFrameSlack = 1 << 20;

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

/// Prints `what` and the outcome of `result` when GODWIT_FUZZ_VERBOSE is set.
template <typename T>
const Result<T>& note(const char* what, const Result<T>& result) {
  static const bool verbose = std::getenv("GODWIT_FUZZ_VERBOSE") != nullptr;
  if (verbose)
    std::fprintf(stderr, "%s: %s\n", what, result ? "ok" : result.error().message.c_str());
  return result;
}

/// The destination never collects dirty pages; load() does not call this.
class NoDirtySource final : public DirtyPageSource {
 public:
  Result<void> collect(snapshot::PageSet&) override { return fail("not a source"); }
};

struct Ram {
  std::unique_ptr<GuestMemory> memory;
  NoDirtySource dirty;
  std::unique_ptr<RamMigratable> ram;
};

/// One RAM for the whole run (creating a memfd per input would dominate the
/// time); never destroyed, so nothing depends on static destruction order.
Ram& ram() {
  static Ram* r = [] {
    auto* out = new Ram;
    out->memory = GuestMemory::create({.size = kRamBytes, .backing = MemoryBacking::memfd}).value();
    out->ram = std::make_unique<RamMigratable>(*out->memory, out->dirty);
    return out;
  }();
  return *r;
}

uint64_t dirty_pages(GuestMemory& memory) {
  uint64_t n = 0;
  for (size_t i = 0; i < memory.regions().size(); ++i) n += memory.vmm_dirty(i).count();
  return n;
}

void clear_dirty(GuestMemory& memory) {
  for (size_t i = 0; i < memory.regions().size(); ++i) memory.vmm_dirty(i).clear();
}

/// Traps unless page `gpa` is marked dirty and holds `bytes` (or zeros when empty).
void check_page(GuestMemory& memory, uint64_t gpa, std::span<const uint8_t> bytes) {
  const MemoryRegion* region = memory.find_region(gpa);
  FUZZ_CHECK(region != nullptr);
  size_t index = static_cast<size_t>(region - memory.regions().data());
  FUZZ_CHECK(memory.vmm_dirty(index).test((gpa - region->gpa) / kPageSize));
  std::span<uint8_t> page = memory.host_span(gpa, kPageSize).value();
  if (bytes.empty())
    FUZZ_CHECK(std::all_of(page.begin(), page.end(), [](uint8_t b) { return b == 0; }));
  else
    FUZZ_CHECK(std::equal(page.begin(), page.end(), bytes.begin()));
}

// ---------------------------------------------------------------------------
// RAM loaders

/// Loads a RAM section payload, then checks it against an independent walk
/// of the same runs (the payload is trusted only after load() accepted it).
void load_ram_section(std::span<const uint8_t> payload, uint32_t version) {
  Ram& r = ram();
  clear_dirty(*r.memory);
  SectionReader in("ram[0]", payload);
  if (!note("load", r.ram->load(in, version))) {
    FUZZ_CHECK(dirty_pages(*r.memory) == 0);
    return;
  }
  FUZZ_CHECK(version == RamMigratable::kVersion && payload.size() >= 4);
  // Later runs may overwrite earlier ones: only the last writer of a page is
  // checked, by walking the runs backwards through a list of their starts.
  struct Run {
    uint64_t gpa;
    uint32_t pages;
    const uint8_t* data;  // nullptr: zero run
  };
  std::vector<Run> runs;
  const uint32_t count = static_cast<uint32_t>(get_le(payload.data(), 4));
  size_t at = 4;
  for (uint32_t i = 0; i < count; ++i) {
    FUZZ_CHECK(at + RamMigratable::kRunHeaderBytes <= payload.size());
    Run run{get_le(payload.data() + at, 8),
            static_cast<uint32_t>(get_le(payload.data() + at + 8, 4)), nullptr};
    const uint8_t kind = payload[at + 12];
    at += RamMigratable::kRunHeaderBytes;
    if (kind == RamMigratable::kDataRun) {
      run.data = payload.data() + at;
      at += uint64_t{run.pages} * kPageSize;
      FUZZ_CHECK(at <= payload.size());
    }
    runs.push_back(run);
  }
  FUZZ_CHECK(at == payload.size());
  std::vector<bool> seen(kRamPages);
  uint64_t written = 0;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    for (uint32_t p = 0; p < it->pages; ++p) {
      const uint64_t gpa = it->gpa + uint64_t{p} * kPageSize;
      FUZZ_CHECK(gpa < kRamBytes);
      if (seen[gpa / kPageSize]) continue;
      seen[gpa / kPageSize] = true;
      ++written;
      check_page(*r.memory, gpa,
                 it->data ? std::span<const uint8_t>(it->data + uint64_t{p} * kPageSize, kPageSize)
                          : std::span<const uint8_t>());
    }
  }
  FUZZ_CHECK(dirty_pages(*r.memory) == written);
}

/// load_pages() plus the same checks as load_ram_section().
void load_pages(std::span<const uint64_t> data_gpas, std::span<const uint8_t> data,
                std::span<const uint64_t> zero_gpas) {
  Ram& r = ram();
  clear_dirty(*r.memory);
  if (!note("load_pages", r.ram->load_pages(data_gpas, data, zero_gpas))) {
    FUZZ_CHECK(dirty_pages(*r.memory) == 0);
    return;
  }
  FUZZ_CHECK(data.size() == data_gpas.size() * kPageSize);
  // Zero pages are written after data pages, so a gpa in both lists is
  // zero, and of a gpa listed twice as data the last copy wins.
  std::vector<bool> seen(kRamPages);
  uint64_t written = 0;
  for (uint64_t gpa : zero_gpas) {
    FUZZ_CHECK(gpa < kRamBytes);
    check_page(*r.memory, gpa, {});
    written += seen[gpa / kPageSize] ? 0 : 1;
    seen[gpa / kPageSize] = true;
  }
  for (size_t i = data_gpas.size(); i-- > 0;) {
    const uint64_t gpa = data_gpas[i];
    FUZZ_CHECK(gpa < kRamBytes);
    if (seen[gpa / kPageSize]) continue;
    seen[gpa / kPageSize] = true;
    ++written;
    check_page(*r.memory, gpa, data.subspan(i * kPageSize, kPageSize));
  }
  FUZZ_CHECK(dirty_pages(*r.memory) == written);
}

void fuzz_pages(uint8_t flags, std::span<const uint8_t> in) {
  if (in.size() < 2) return;
  const size_t data_count = in[0] % 8, zero_count = in[1] % 8;
  in = in.subspan(2);
  std::vector<uint64_t> gpas;
  for (size_t i = 0; i < data_count + zero_count && in.size() >= 8; ++i) {
    gpas.push_back(get_le(in.data(), 8));
    in = in.subspan(8);
  }
  if (gpas.size() < data_count + zero_count) return;
  if (flags & 1) {
    if (in.size() < data_count * kPageSize) return;
    in = in.first(data_count * kPageSize);
  }
  std::span<const uint64_t> all(gpas);
  load_pages(all.first(data_count), in, all.subspan(data_count));
}

// ---------------------------------------------------------------------------
// Wire

/// What the fixed destination looks like; SETUP seeds describe the same VM.
const wire::VmDescription& destination_vm() {
  static const wire::VmDescription vm{
      .memory = {{0, kRamBytes}},
      .vcpus = 2,
      .tsc_khz = 2000000,
      .devices = {{{"ram", 0}, 1, 1}, {{"vcpu", 0}, 1, 1}, {{"vcpu", 1}, 1, 1}},
      .godwit_version = "fuzz",
  };
  return vm;
}

bool same(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

/// Every payload decoder and the return-path check on one frame.
void check_frame(const wire::Frame& frame) {
  const std::span<const uint8_t> payload(frame.payload);
  (void)wire::frame_type_name(frame.type);

  if (auto setup = note("decode_setup", wire::decode_setup(frame))) {
    FUZZ_CHECK(same(wire::encode_setup(*setup), payload));
    (void)note("check_compatible", wire::check_compatible(setup->vm, destination_vm()));
    (void)wire::check_compatible(destination_vm(), setup->vm);
  }
  if (auto accept = wire::decode_setup_accept(frame))
    FUZZ_CHECK(same(wire::encode_setup_accept(*accept), payload));
  if (auto section = note("decode_section", wire::decode_section(frame))) {
    auto head = wire::encode_section_header(section->header);
    FUZZ_CHECK(head.size() + section->payload.size() == payload.size());
    FUZZ_CHECK(same(head, payload.first(head.size())));
    if (section->header.key == SectionKey{RamMigratable::kKind, 0})
      load_ram_section(section->payload, section->header.version);
  }
  if (auto v = wire::decode_u32(frame)) FUZZ_CHECK(same(wire::encode_u32(*v), payload));
  if (auto v = wire::decode_u64(frame)) FUZZ_CHECK(same(wire::encode_u64(*v), payload));
  if (auto text = wire::decode_text(frame)) FUZZ_CHECK(same(wire::encode_text(*text), payload));
  if (auto ack = wire::decode_switchover_ack(frame))
    FUZZ_CHECK(same(wire::encode_switchover_ack(*ack), payload));
  if (wire::decode_empty(frame)) FUZZ_CHECK(payload.empty());
  auto valid = note("validate_return_path_frame", wire::validate_return_path_frame(frame));
  FUZZ_CHECK(!valid || wire::is_return_path_type(frame.type));
  if (!valid) FUZZ_CHECK(!valid.error().message.empty());
}

void fuzz_frame(std::span<const uint8_t> in) {
  if (in.size() < 2) return;
  wire::Frame frame;
  frame.type = static_cast<uint16_t>(get_le(in.data(), 2));
  frame.payload.assign(in.begin() + 2, in.end());
  check_frame(frame);
}

void fuzz_hello(uint8_t flags, std::span<const uint8_t> in) {
  if (in.size() < wire::kHelloBytes) return;
  std::array<uint8_t, wire::kHelloBytes> bytes;
  std::copy_n(in.begin(), bytes.size(), bytes.begin());
  if (flags & 1)
    put_le(bytes.data() + wire::kHelloBytes - 4,
           crc32c(std::span<const uint8_t>(bytes).first(wire::kHelloBytes - 4)), 4);
  if (auto hello = note("decode_hello", wire::decode_hello(bytes)))
    FUZZ_CHECK(wire::encode_hello(*hello) == bytes);
}

// ---------------------------------------------------------------------------
// Streams on a socket

/// The reading end of a socketpair into which `stream` was written and
/// whose write end is closed, as a destination sees a peer that sent
/// `stream` and hung up.
Connection peer_sending(std::span<const uint8_t> stream) {
  int fds[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  Connection reader(UniqueFd(fds[0]), "fuzz-peer");
  UniqueFd writer(fds[1]);
  // run_fuzz.sh caps inputs at 64 KiB, which the socket buffer holds: no
  // writer thread is needed. Should a send still find the buffer full, the
  // peer's stream just ends there.
  int bytes = 1 << 20;
  (void)setsockopt(writer.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  size_t sent = 0;
  while (sent < stream.size()) {
    ssize_t n =
        send(writer.get(), stream.data() + sent, stream.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  return reader;
}

/// Rewrites the hello checksum and every frame checksum in place, as far as
/// the stream holds whole frames.
void fix_main_stream(std::vector<uint8_t>& s) {
  if (s.size() < wire::kHelloBytes) return;
  put_le(s.data() + wire::kHelloBytes - 4,
         crc32c(std::span<const uint8_t>(s).first(wire::kHelloBytes - 4)), 4);
  size_t at = wire::kHelloBytes;
  while (at + 6 <= s.size()) {
    const uint64_t end = at + 6 + get_le(s.data() + at + 2, 4);
    if (end + 4 > s.size()) break;
    put_le(s.data() + end, crc32c(std::span<const uint8_t>(s).subspan(at, end - at)), 4);
    at = end + 4;
  }
}

/// Whether a frame header in `s` declares a payload the stream cannot hold
/// by far, yet within kMaxFramePayload. FrameReader allocates the declared
/// length before reading (up to 64 MiB, by design); such inputs only slow
/// the fuzzer tenfold, while shorter truncations and over-limit lengths
/// still test the same paths.
bool claims_large_frame(std::span<const uint8_t> s) {
  size_t at = wire::kHelloBytes;
  while (at + 6 <= s.size()) {
    const uint64_t length = get_le(s.data() + at + 2, 4);
    if (length > s.size() - at + kLargeFrameSlack && length <= wire::kMaxFramePayload) return true;
    at += 6 + length + 4;
  }
  return false;
}

/// The destination's main channel: the peer's hello, then frames until the
/// stream fails; each frame goes through every decoder.
void fuzz_main_stream(uint8_t flags, std::span<const uint8_t> in) {
  std::vector<uint8_t> stream(in.begin(), in.end());
  if (flags & 2) fix_main_stream(stream);
  if (claims_large_frame(stream)) return;
  Connection connection = peer_sending(stream);
  if (!note("receive_hello", wire::receive_hello(connection, wire::Hello{}))) return;
  wire::FrameReader reader(connection);
  for (int i = 0; i < kMaxFrames; ++i) {
    const uint64_t before = reader.bytes_received();
    auto frame = note("FrameReader::read", reader.read());
    if (!frame) {
      FUZZ_CHECK(reader.bytes_received() == before);
      return;
    }
    FUZZ_CHECK(frame->payload.size() <= wire::kMaxFramePayload);
    FUZZ_CHECK(reader.bytes_received() == before + 10 + frame->payload.size());
    check_frame(*frame);
  }
}

// ---------------------------------------------------------------------------
// multifd

/// Rewrites every packet's payload checksum, header checksum and (unless
/// `keep_sequence`) sequence number in place, as far as the stream holds
/// whole fields.
void fix_packets(std::vector<uint8_t>& s, bool keep_sequence) {
  size_t at = 0;
  for (uint64_t sequence = 0; at + multifd::kPacketHeaderBytes <= s.size(); ++sequence) {
    uint8_t* h = s.data() + at;
    if (!keep_sequence) put_le(h + 8, sequence, 8);
    const uint64_t pages = get_le(h + 20, 4) + get_le(h + 24, 4);
    const uint64_t lists = pages * 8;
    const uint64_t payload = h[32] == 0 ? get_le(h + 20, 4) * kPageSize : get_le(h + 36, 4);
    const size_t body = at + multifd::kPacketHeaderBytes;
    if (body + lists + payload <= s.size())
      put_le(h + 40, crc32c(std::span<const uint8_t>(s).subspan(body + lists, payload)), 4);
    if (body + lists > s.size()) break;
    uint32_t crc = crc32c(std::span<const uint8_t>(h, 44));
    put_le(h + 44, crc32c(std::span<const uint8_t>(s).subspan(body, lists), crc), 4);
    at = body + lists + payload;
  }
}

void fuzz_multifd(uint8_t flags, std::span<const uint8_t> in) {
  std::vector<uint8_t> stream(in.begin(), in.end());
  if (flags & 2) fix_packets(stream, (flags & 4) != 0);
  if (stream.size() >= multifd::kPacketHeaderBytes) {
    auto header = note("decode_header", multifd::decode_header(std::span<const uint8_t, 48>(
                                            stream.data(), multifd::kPacketHeaderBytes)));
    if (header)
      FUZZ_CHECK(header->data_pages + uint64_t{header->zero_pages} <= multifd::kMaxPagesPerPacket);
  }

  Connection reader = peer_sending(stream);
  const Codec negotiated = (flags & 1) ? Codec::zstd : Codec::none;
  multifd::PacketReceiver receiver(reader, negotiated);
  for (int i = 0; i < kMaxPackets; ++i) {
    auto packet = note("read", receiver.read());
    if (!packet) {
      const std::string first = packet.error().message;
      FUZZ_CHECK(first.starts_with("multifd packet " + std::to_string(i) + ": "));
      auto again = receiver.read();
      FUZZ_CHECK(!again && again.error().message == first);
      FUZZ_CHECK(receiver.packets() == static_cast<uint64_t>(i));
      return;
    }
    const multifd::PacketHeader& h = packet->header;
    FUZZ_CHECK(h.sequence == static_cast<uint64_t>(i));
    FUZZ_CHECK(packet->data_gpas.size() == h.data_pages);
    FUZZ_CHECK(packet->zero_gpas.size() == h.zero_pages);
    FUZZ_CHECK(packet->data.size() == size_t{h.data_pages} * kPageSize);
    FUZZ_CHECK(!(h.codec == Codec::zstd && negotiated == Codec::none));
    for (uint64_t gpa : packet->data_gpas) FUZZ_CHECK(gpa % kPageSize == 0);
    for (uint64_t gpa : packet->zero_gpas) FUZZ_CHECK(gpa % kPageSize == 0);
    if (packet->sync())
      FUZZ_CHECK(h.data_pages == 0 && h.zero_pages == 0);
    else
      load_pages(packet->data_gpas, packet->data, packet->zero_gpas);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[1];
  std::span<const uint8_t> in(data + 2, size - 2);
  switch (data[0] % 6) {
    case 0:
      fuzz_frame(in);
      break;
    case 1:
      fuzz_hello(flags, in);
      break;
    case 2:
      fuzz_multifd(flags, in);
      break;
    case 3:
      load_ram_section(in, (flags & 1) ? 2 : RamMigratable::kVersion);
      break;
    case 4:
      fuzz_pages(flags, in);
      break;
    case 5:
      fuzz_main_stream(flags, in);
      break;
  }
  return 0;
}
