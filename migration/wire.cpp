// The migration wire protocol, version 1 (see wire.h for the diagram and the
// byte layouts). Every field goes through SectionWriter / SectionReader, so
// the encoding is explicit little-endian and every decode is bounds-checked.
#include "migration/wire.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <random>

#include "base/le_bytes.h"
#include "migration/crc32c.h"
#include "snapshot/memory_file_format.h"

namespace godwit::migration::wire {
namespace {

constexpr size_t kFrameHeaderBytes = 6;   // type u16 | length u32
constexpr size_t kFrameTrailerBytes = 4;  // crc32c u32
constexpr size_t kHelloCrcOffset = kHelloBytes - 4;

struct TypeName {
  FrameType type;
  const char* name;
};
constexpr TypeName kTypeNames[] = {
    {FrameType::setup, "SETUP"},       {FrameType::section, "SECTION"},
    {FrameType::ping, "PING"},         {FrameType::round, "ROUND"},
    {FrameType::complete, "COMPLETE"}, {FrameType::go, "GO"},
    {FrameType::cancel, "CANCEL"},     {FrameType::setup_accept, "SETUP_ACCEPT"},
    {FrameType::pong, "PONG"},         {FrameType::switchover_ack, "SWITCHOVER_ACK"},
    {FrameType::error, "ERROR"},       {FrameType::loaded, "LOADED"},
    {FrameType::resumed, "RESUMED"},   {FrameType::flush, "FLUSH"},
};

bool is_known_type(uint16_t type) {
  for (const auto& t : kTypeNames)
    if (static_cast<uint16_t>(t.type) == type) return true;
  return false;
}

/// Fails unless `frame.type` is one of `types`; the error names what was
/// expected and what came ("PONG: got a SECTION frame").
Result<void> expect_type(const Frame& frame, std::initializer_list<FrameType> types) {
  std::string expected;
  for (FrameType t : types) {
    if (frame.type == static_cast<uint16_t>(t)) return {};
    expected += (expected.empty() ? "" : " or ") + frame_type_name(static_cast<uint16_t>(t));
  }
  return fail(expected + ": got a " + frame_type_name(frame.type) + " frame");
}

/// "PONG: payload is 3 bytes, expected 4".
Result<void> expect_size(const Frame& frame, size_t size) {
  if (frame.payload.size() == size) return {};
  return fail(frame_type_name(frame.type) + ": payload is " + std::to_string(frame.payload.size()) +
              " bytes, expected " + std::to_string(size));
}

SectionReader reader_for(const Frame& frame) {
  return SectionReader(frame_type_name(frame.type), frame.payload);
}

void write_key(SectionWriter& w, const SectionKey& key) {
  w.string(key.kind);
  w.u32(key.instance);
}

Result<SectionKey> read_key(SectionReader& r) {
  SectionKey key;
  key.kind = TRY(r.string());
  key.instance = TRY(r.u32());
  return key;
}

void write_vm(SectionWriter& w, const VmDescription& vm) {
  w.u32(static_cast<uint32_t>(vm.memory.size()));
  for (const auto& region : vm.memory) {
    w.u64(region.gpa);
    w.u64(region.size);
  }
  w.u32(vm.vcpus);
  w.u32(vm.tsc_khz);
  w.u32(static_cast<uint32_t>(vm.devices.size()));
  for (const auto& d : vm.devices) {
    write_key(w, d.key);
    w.u32(d.version);
    w.u32(d.min_version);
  }
  w.string(vm.godwit_version);
}

Result<VmDescription> read_vm(SectionReader& r) {
  VmDescription vm;
  uint32_t regions = TRY(r.count(16, "memory regions"));
  vm.memory.reserve(regions);
  for (uint32_t i = 0; i < regions; ++i) {
    RegionDescription region;
    region.gpa = TRY(r.u64());
    region.size = TRY(r.u64());
    vm.memory.push_back(region);
  }
  vm.vcpus = TRY(r.u32());
  vm.tsc_khz = TRY(r.u32());
  // kind length u32 + instance + version + min_version: 16 bytes at least.
  uint32_t devices = TRY(r.count(16, "devices"));
  vm.devices.reserve(devices);
  for (uint32_t i = 0; i < devices; ++i) {
    DeviceDescription d;
    d.key = TRY(read_key(r));
    d.version = TRY(r.u32());
    d.min_version = TRY(r.u32());
    vm.devices.push_back(std::move(d));
  }
  vm.godwit_version = TRY(r.string());
  return vm;
}

Result<SwitchoverAckMode> read_mode(SectionReader& r) {
  size_t at = r.offset();
  uint8_t mode = TRY(r.u8());
  if (mode > static_cast<uint8_t>(SwitchoverAckMode::per_device))
    return r.error_at(at, "unknown switchover-ack mode " + std::to_string(mode));
  return static_cast<SwitchoverAckMode>(mode);
}

/// "1 GiB", "640 KiB", "4097 bytes".
std::string size_text(uint64_t bytes) {
  constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [unit, name] : kUnits)
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + " " + name;
  return std::to_string(bytes) + " bytes";
}

std::string layout_text(const std::vector<RegionDescription>& memory) {
  if (memory.empty()) return "no memory";
  std::string out;
  for (const auto& r : memory)
    out += (out.empty() ? "" : " + ") + size_text(r.size) + " at " + snapshot::hex_u64(r.gpa);
  return out;
}

/// Devices by key; a key listed twice is itself a mismatch.
std::map<SectionKey, DeviceDescription> device_map(const std::vector<DeviceDescription>& devices,
                                                   const char* side,
                                                   std::vector<std::string>& problems) {
  std::map<SectionKey, DeviceDescription> out;
  for (const auto& d : devices)
    if (!out.emplace(d.key, d).second)
      problems.push_back(d.key.name() + ": listed twice on the " + side);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Hello

std::array<uint8_t, kHelloBytes> encode_hello(const Hello& hello) {
  std::array<uint8_t, kHelloBytes> out{};
  uint8_t* p = out.data();
  std::copy(kHelloMagic.begin(), kHelloMagic.end(), p);
  put_le(p + 8, hello.protocol_version, 4);
  std::copy(hello.session_id.begin(), hello.session_id.end(), p + 12);
  p[28] = static_cast<uint8_t>(hello.role);
  put_le(p + 29, hello.channel_index, 4);
  put_le(p + kHelloCrcOffset, crc32c(std::span(out).first(kHelloCrcOffset)), 4);
  return out;
}

Result<Hello> decode_hello(std::span<const uint8_t, kHelloBytes> bytes) {
  if (!std::equal(kHelloMagic.begin(), kHelloMagic.end(), bytes.begin()))
    return fail("not a godwit migration stream (the first 8 bytes are not \"GDWTMIGR\")");
  uint32_t crc = static_cast<uint32_t>(get_le(bytes.data() + kHelloCrcOffset, 4));
  uint32_t actual = crc32c(bytes.first(kHelloCrcOffset));
  if (crc != actual)
    return fail("hello checksum mismatch (stored " + snapshot::hex_u64(crc) + ", computed " +
                snapshot::hex_u64(actual) + ")");
  Hello h;
  h.protocol_version = static_cast<uint32_t>(get_le(bytes.data() + 8, 4));
  std::copy(bytes.begin() + 12, bytes.begin() + 28, h.session_id.begin());
  uint8_t role = bytes[28];
  if (role < static_cast<uint8_t>(ChannelRole::main) ||
      role > static_cast<uint8_t>(ChannelRole::preempt))
    return fail("hello: unknown channel role " + std::to_string(role));
  h.role = static_cast<ChannelRole>(role);
  h.channel_index = static_cast<uint32_t>(get_le(bytes.data() + 29, 4));
  return h;
}

std::array<uint8_t, 16> new_session_id() {
  std::array<uint8_t, 16> id{};
  size_t done = 0;
  while (done < id.size()) {
    ssize_t n = getrandom(id.data() + done, id.size() - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // No getrandom (very old kernel, seccomp): a session id only has to
      // tell sessions apart, not be secret.
      std::random_device rd;
      for (; done < id.size(); ++done) id[done] = static_cast<uint8_t>(rd());
    }
  }
  return id;
}

std::string session_text(const std::array<uint8_t, 16>& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : id) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Frame types

std::string frame_type_name(uint16_t type) {
  for (const auto& t : kTypeNames)
    if (static_cast<uint16_t>(t.type) == type) return t.name;
  char buf[16];
  std::snprintf(buf, sizeof buf, "type 0x%04x", type);
  return buf;
}

bool is_return_path_type(uint16_t type) { return type >= 0x100 && is_known_type(type); }

bool is_main_channel_type(uint16_t type) { return type < 0x100 && is_known_type(type); }

// ---------------------------------------------------------------------------
// Compatibility (R34: refuse at setup, with every reason at once)

Result<void> check_compatible(const VmDescription& source, const VmDescription& destination) {
  std::vector<std::string> problems;
  if (source.memory != destination.memory)
    problems.push_back("memory layout: source " + layout_text(source.memory) + ", destination " +
                       layout_text(destination.memory));
  if (source.vcpus != destination.vcpus)
    problems.push_back("vCPU count: source " + std::to_string(source.vcpus) + ", destination " +
                       std::to_string(destination.vcpus));
  // There is no TSC scaling here: a different rate would make guest time jump.
  if (source.tsc_khz != 0 && destination.tsc_khz != 0 && source.tsc_khz != destination.tsc_khz)
    problems.push_back("TSC kHz: source " + std::to_string(source.tsc_khz) + ", destination " +
                       std::to_string(destination.tsc_khz));
  auto src = device_map(source.devices, "source", problems);
  auto dst = device_map(destination.devices, "destination", problems);
  for (const auto& [key, s] : src) {
    auto it = dst.find(key);
    if (it == dst.end()) {
      problems.push_back(key.name() + ": on the source, missing on the destination");
      continue;
    }
    const DeviceDescription& d = it->second;
    if (s.version < d.min_version || s.version > d.version)
      problems.push_back(key.name() + ": source writes version " + std::to_string(s.version) +
                         ", destination loads " + std::to_string(d.min_version) + ".." +
                         std::to_string(d.version));
  }
  for (const auto& [key, d] : dst)
    if (!src.contains(key))
      problems.push_back(key.name() + ": on the destination, missing on the source");
  if (problems.empty()) return {};
  std::string text;
  for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
  return fail(text);
}

// ---------------------------------------------------------------------------
// Encoders

std::vector<uint8_t> encode_setup(const SetupMessage& message) {
  SectionWriter w;
  w.u64(message.features);
  w.u8(static_cast<uint8_t>(message.switchover_ack_mode));
  write_vm(w, message.vm);
  if ((message.features & kFeatureMultifd) != 0) {
    w.u32(message.multifd_channels);
    w.u8(static_cast<uint8_t>(message.multifd_codec));
  }
  return std::move(w).take();
}

std::vector<uint8_t> encode_setup_accept(const SetupAccept& message) {
  SectionWriter w;
  w.u64(message.features);
  w.u8(static_cast<uint8_t>(message.switchover_ack_mode));
  return std::move(w).take();
}

std::vector<uint8_t> encode_section_header(const SectionHeader& header) {
  SectionWriter w;
  write_key(w, header.key);
  w.u32(header.version);
  return std::move(w).take();
}

std::vector<uint8_t> encode_u32(uint32_t value) {
  SectionWriter w;
  w.u32(value);
  return std::move(w).take();
}

std::vector<uint8_t> encode_u64(uint64_t value) {
  SectionWriter w;
  w.u64(value);
  return std::move(w).take();
}

std::vector<uint8_t> encode_text(std::string_view text) {
  SectionWriter w;
  w.string(text);
  return std::move(w).take();
}

std::vector<uint8_t> encode_switchover_ack(const SwitchoverAck& ack) {
  SectionWriter w;
  write_key(w, ack.device);
  w.u32(ack.generation);
  return std::move(w).take();
}

// ---------------------------------------------------------------------------
// Decoders

Result<SetupMessage> decode_setup(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::setup}));
  SectionReader r = reader_for(frame);
  SetupMessage m;
  m.features = TRY(r.u64());
  m.switchover_ack_mode = TRY(read_mode(r));
  m.vm = TRY(read_vm(r));
  if ((m.features & kFeatureMultifd) != 0) {
    const size_t at = r.offset();
    m.multifd_channels = TRY(r.u32());
    if (m.multifd_channels < 1 || m.multifd_channels > kMaxChannels)
      return r.error_at(at, "multifd channel count " + std::to_string(m.multifd_channels) +
                                " is out of range 1.." + std::to_string(kMaxChannels));
    const uint8_t codec = TRY(r.u8());
    if (codec > static_cast<uint8_t>(Codec::zstd))
      return r.error_at(at + 4, "unknown multifd codec " + std::to_string(codec));
    m.multifd_codec = static_cast<Codec>(codec);
  }
  TRY_VOID(r.expect_end());
  return m;
}

Result<SetupAccept> decode_setup_accept(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::setup_accept}));
  TRY_VOID(expect_size(frame, 9));
  SectionReader r = reader_for(frame);
  SetupAccept m;
  m.features = TRY(r.u64());
  m.switchover_ack_mode = TRY(read_mode(r));
  return m;
}

Result<SectionFrame> decode_section(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::section}));
  SectionReader r = reader_for(frame);
  SectionFrame out;
  out.header.key = TRY(read_key(r));
  out.header.version = TRY(r.u32());
  out.payload = std::span<const uint8_t>(frame.payload).subspan(r.offset());
  return out;
}

Result<uint32_t> decode_u32(const Frame& frame) {
  TRY_VOID(
      expect_type(frame, {FrameType::ping, FrameType::pong, FrameType::round, FrameType::flush}));
  TRY_VOID(expect_size(frame, 4));
  return static_cast<uint32_t>(get_le(frame.payload.data(), 4));
}

Result<uint64_t> decode_u64(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::loaded, FrameType::resumed}));
  TRY_VOID(expect_size(frame, 8));
  return get_le(frame.payload.data(), 8);
}

Result<std::string> decode_text(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::error, FrameType::cancel}));
  SectionReader r = reader_for(frame);
  std::string text = TRY(r.string());
  TRY_VOID(r.expect_end());
  return text;
}

Result<SwitchoverAck> decode_switchover_ack(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::switchover_ack}));
  SectionReader r = reader_for(frame);
  SwitchoverAck ack;
  ack.device = TRY(read_key(r));
  ack.generation = TRY(r.u32());
  TRY_VOID(r.expect_end());
  return ack;
}

Result<void> decode_empty(const Frame& frame) {
  TRY_VOID(expect_type(frame, {FrameType::complete, FrameType::go}));
  return expect_size(frame, 0);
}

Result<void> validate_return_path_frame(const Frame& frame) {
  if (is_main_channel_type(frame.type))
    return fail(frame_type_name(frame.type) + " is not a return-path message");
  if (!is_return_path_type(frame.type)) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "unknown return-path message type 0x%04x", frame.type);
    return fail(buf);
  }
  switch (static_cast<FrameType>(frame.type)) {
    case FrameType::setup_accept:
      TRY_VOID(decode_setup_accept(frame));
      return {};
    case FrameType::pong:
      return expect_size(frame, 4);
    case FrameType::loaded:
    case FrameType::resumed:
      return expect_size(frame, 8);
    case FrameType::switchover_ack:
      TRY_VOID(decode_switchover_ack(frame));
      return {};
    case FrameType::error:
      TRY_VOID(decode_text(frame));
      return {};
    default:
      break;
  }
  return fail("unhandled return-path message " + frame_type_name(frame.type));
}

// ---------------------------------------------------------------------------
// Framing

Result<void> FrameWriter::send(FrameType type, std::span<const uint8_t> head,
                               std::span<const uint8_t> body) {
  const auto type_value = static_cast<uint16_t>(type);
  const uint64_t length = uint64_t{head.size()} + body.size();
  if (length > kMaxFramePayload)
    return fail(frame_type_name(type_value) + " frame of " + std::to_string(length) +
                " bytes exceeds the limit of " + std::to_string(kMaxFramePayload) + " bytes");
  std::array<uint8_t, kFrameHeaderBytes> header;
  put_le(header.data(), type_value, 2);
  put_le(header.data() + 2, length, 4);
  uint32_t crc = crc32c(header);
  crc = crc32c(head, crc);
  crc = crc32c(body, crc);
  std::array<uint8_t, kFrameTrailerBytes> trailer;
  put_le(trailer.data(), crc, 4);
  // The body goes out from where it lies: one gathered write, no copy.
  iovec parts[4];
  size_t n = 0;
  auto add = [&](std::span<const uint8_t> s) {
    if (!s.empty()) parts[n++] = {const_cast<uint8_t*>(s.data()), s.size()};
  };
  add(header);
  add(head);
  add(body);
  add(trailer);
  auto sent = connection_.write_all(std::span<const iovec>(parts, n));
  if (!sent) return fail(sent.error().context("sending " + frame_type_name(type_value)));
  bytes_sent_ += kFrameHeaderBytes + length + kFrameTrailerBytes;
  return {};
}

Result<Frame> FrameReader::read() {
  std::array<uint8_t, kFrameHeaderBytes> header;
  TRY_VOID(connection_.read_exact(header));
  Frame frame;
  frame.type = static_cast<uint16_t>(get_le(header.data(), 2));
  const auto length = static_cast<uint32_t>(get_le(header.data() + 2, 4));
  const std::string name = frame_type_name(frame.type);
  // Checked before allocating: a corrupt length must not reserve gigabytes.
  if (length > kMaxFramePayload)
    return fail(name + " frame of " + std::to_string(length) + " bytes exceeds the limit of " +
                std::to_string(kMaxFramePayload) + " bytes");
  frame.payload.resize(length);
  auto body = connection_.read_exact(frame.payload);
  if (!body) return fail(body.error().context("reading a " + name + " frame"));
  std::array<uint8_t, kFrameTrailerBytes> trailer;
  auto tail = connection_.read_exact(trailer);
  if (!tail) return fail(tail.error().context("reading a " + name + " frame"));
  uint32_t crc = crc32c(frame.payload, crc32c(header));
  if (crc != static_cast<uint32_t>(get_le(trailer.data(), 4)))
    return fail(name + " frame checksum mismatch: stream corrupted");
  bytes_received_ += kFrameHeaderBytes + length + kFrameTrailerBytes;
  return frame;
}

std::string to_string(SwitchoverAckMode mode) {
  switch (mode) {
    case SwitchoverAckMode::off:
      return "off";
    case SwitchoverAckMode::per_device:
      return "per-device";
  }
  return "mode " + std::to_string(static_cast<int>(mode));
}

Result<Hello> exchange_hello(Connection& connection, const Hello& ours) {
  TRY_VOID(send_hello(connection, ours));
  return receive_hello(connection, ours);
}

Result<void> send_hello(Connection& connection, const Hello& ours) {
  auto bytes = encode_hello(ours);
  auto sent = connection.write_all(bytes);
  if (!sent) return fail(sent.error().context("sending hello"));
  return {};
}

Result<Hello> receive_hello(Connection& connection, const Hello& ours) {
  std::array<uint8_t, kHelloBytes> theirs;
  auto got = connection.read_exact(theirs);
  if (!got) return fail(got.error().context("reading the peer's hello"));
  auto hello = decode_hello(theirs);
  if (!hello) return fail(hello.error().context(connection.peer()));
  if (hello->protocol_version != ours.protocol_version)
    return fail(connection.peer() + ": protocol version: ours " +
                std::to_string(ours.protocol_version) + ", peer " +
                std::to_string(hello->protocol_version));
  return hello;
}

}  // namespace godwit::migration::wire
