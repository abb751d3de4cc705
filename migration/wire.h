// The migration wire protocol (version 1): the hello that opens every
// connection, checksummed frames, the main-channel messages (source ->
// destination) and the return-path messages (destination -> source, on the
// same connection's other direction). Every record is an explicit
// little-endian encode; no host struct is ever copied.
//
//   source                                              destination (godwit --incoming)
//     | connect                                               | listen, accept
//     |-- hello(role main, session id, version) ------------->|
//     |<------------------------------- hello(version) -------| (either side fails on a version it
//     |                                                       |  does not speak, naming both)
//     |-- SETUP(features, switchover-ack mode, VM desc) ----->| compare with its own VM (R34,
//     |<-------- SETUP_ACCEPT(features, mode) | ERROR(text) --|  layout, vCPUs, TSC, devices)
//     |== multifd channels (SETUP asked for N): N more connections, each
//     |   hello(role multifd, same session id, index i), answered by the
//     |   destination's hello; RAM pages then travel on them as packets
//     |   (migration/multifd_packet.h), every dirty sync ends a round with a
//     |   SYNC packet on each channel and FLUSH(round) here ==============|
//     |   [state active; dirty tracking on]                   |
//     |-- SECTION(ram[0], v, runs) ... ROUND(n) ... --------->| load in place
//     |-- PING(v) ------------------------------------------->|
//     |<------------------------------------------ PONG(v) ---|
//     |<----------------------- SWITCHOVER_ACK(dev, gen) -----| (per-device, when requested)
//     |   [vCPUs stop: state device; final query]             |
//     |-- SECTION(ram[0]) SECTION(machine[0]) ... COMPLETE -->| validate, load everything
//     |<------------------------------------- LOADED(us) -----| (or ERROR(text): source resumes)
//     |-- GO ------------------------------------------------>| start the vCPUs
//     |<------------------------------------ RESUMED(us) -----| [destination running]
//     |   [completed; source stays paused]                    |
//   Any time before GO: CANCEL(text) from the source, ERROR(text) from the
//   destination; either side may also just close (crash).
//
// The destination never runs the guest before GO; the source never resumes
// after sending GO. If the connection dies between the two, both stay paused
// (never both running); the source keeps the full state.
//
// Hello (fixed 37 bytes):
//   magic "GDWTMIGR" | protocol version u32 | session id 16 bytes
//   | role u8 | channel index u32 | crc32c u32 over the preceding 33 bytes
// Frame (every later record, both directions):
//   type u16 | payload length u32 | payload | crc32c u32 over type..payload
// A frame longer than kMaxFramePayload, a checksum mismatch, an unknown type
// and a payload whose length does not match its type's layout all fail with
// an error naming the message type (R57).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "migration/section.h"
#include "migration/status.h"
#include "migration/transport.h"

namespace godwit::migration::wire {

inline constexpr std::array<uint8_t, 8> kHelloMagic = {'G', 'D', 'W', 'T', 'M', 'I', 'G', 'R'};
/// The one protocol version this code speaks.
inline constexpr uint32_t kProtocolVersion = 1;
/// Hello bytes on the wire, checksum included.
inline constexpr size_t kHelloBytes = 37;
/// Largest frame payload accepted (a SECTION of RAM is at most a few MiB).
inline constexpr uint32_t kMaxFramePayload = 64u << 20;

/// What a connection carries.
enum class ChannelRole : uint8_t { main = 1, multifd = 2, preempt = 3 };

struct Hello {
  uint32_t protocol_version = kProtocolVersion;
  std::array<uint8_t, 16> session_id{};
  ChannelRole role = ChannelRole::main;
  uint32_t channel_index = 0;

  friend bool operator==(const Hello&, const Hello&) = default;
};

[[nodiscard]] std::array<uint8_t, kHelloBytes> encode_hello(const Hello& hello);
/// Fails on a wrong magic ("not a godwit migration stream"), a checksum
/// mismatch or an unknown role. A different protocol version decodes: the
/// caller decides (and names both versions in its error).
[[nodiscard]] Result<Hello> decode_hello(std::span<const uint8_t, kHelloBytes> bytes);
/// 16 random bytes (getrandom).
[[nodiscard]] std::array<uint8_t, 16> new_session_id();
/// Lower-case hex of a session id, for logs.
[[nodiscard]] std::string session_text(const std::array<uint8_t, 16>& id);

/// Frame types. Main channel (source -> destination) below 0x100, return
/// path (destination -> source) from 0x100. Values never change meaning.
enum class FrameType : uint16_t {
  setup = 0x0001,
  section = 0x0002,
  ping = 0x0003,
  round = 0x0004,
  complete = 0x0005,
  go = 0x0006,
  cancel = 0x0007,
  flush = 0x0008,  ///< multifd: every channel has sent SYNC(round); apply nothing later first
  setup_accept = 0x0101,
  pong = 0x0102,
  switchover_ack = 0x0103,
  error = 0x0104,
  loaded = 0x0105,
  resumed = 0x0106,
};

/// "SETUP", "SECTION", ..., or "type 0x1234" for an unknown value.
[[nodiscard]] std::string frame_type_name(uint16_t type);
/// Whether `type` is a return-path type this code knows.
[[nodiscard]] bool is_return_path_type(uint16_t type);
/// Whether `type` is a main-channel type this code knows.
[[nodiscard]] bool is_main_channel_type(uint16_t type);

/// One received frame, checksum already verified.
struct Frame {
  uint16_t type = 0;
  std::vector<uint8_t> payload;
};

/// Feature bits of SETUP / SETUP_ACCEPT.
enum Feature : uint64_t {
  kFeatureSwitchoverAck = 1u << 0,  ///< the destination may hold switchover (R26, R34)
  kFeatureMultifd = 1u << 1,        ///< RAM pages on extra channels (SETUP carries count, codec)
};
/// Features this build can do.
inline constexpr uint64_t kSupportedFeatures = kFeatureSwitchoverAck | kFeatureMultifd;

/// Switchover-ack mode, agreed explicitly at setup (R34).
enum class SwitchoverAckMode : uint8_t {
  off = 0,         ///< no ACKs
  per_device = 1,  ///< reusable per-device ACKs carrying a device id and generation
};
/// "off", "per-device", or "mode N" for a value this code does not know.
[[nodiscard]] std::string to_string(SwitchoverAckMode mode);

/// One migratable piece of the VM and the section versions it handles.
struct DeviceDescription {
  SectionKey key;
  uint32_t version = 1;      ///< version it writes
  uint32_t min_version = 1;  ///< oldest it loads

  friend bool operator==(const DeviceDescription&, const DeviceDescription&) = default;
};

/// One guest RAM region.
struct RegionDescription {
  uint64_t gpa = 0;
  uint64_t size = 0;

  friend bool operator==(const RegionDescription&, const RegionDescription&) = default;
};

/// What both ends must agree on before any page moves.
struct VmDescription {
  std::vector<RegionDescription> memory;
  uint32_t vcpus = 0;
  uint32_t tsc_khz = 0;  ///< 0: unknown (not compared)
  std::vector<DeviceDescription> devices;
  std::string godwit_version;  ///< informational

  friend bool operator==(const VmDescription&, const VmDescription&) = default;
};

/// Whether a destination described by `destination` can take a VM described
/// by `source`: same memory layout, vCPU count and TSC rate (when both
/// known), and the same device set where every source version is within the
/// destination's [min_version, version]. The error lists every mismatch,
/// each naming both values ("vCPU count: source 2, destination 1").
[[nodiscard]] Result<void> check_compatible(const VmDescription& source,
                                            const VmDescription& destination);

struct SetupMessage {
  uint64_t features = 0;  ///< requested
  SwitchoverAckMode switchover_ack_mode = SwitchoverAckMode::off;
  VmDescription vm;
  /// With kFeatureMultifd only (then on the wire after `vm`: channels u32 |
  /// codec u8; channels 1..kMaxChannels): the channels the source will open
  /// and the codec of their packets. Without it both stay 0 / none.
  uint32_t multifd_channels = 0;
  Codec multifd_codec = Codec::none;

  friend bool operator==(const SetupMessage&, const SetupMessage&) = default;
};

struct SetupAccept {
  uint64_t features = 0;  ///< accepted (a subset of the requested)
  SwitchoverAckMode switchover_ack_mode = SwitchoverAckMode::off;

  friend bool operator==(const SetupAccept&, const SetupAccept&) = default;
};

/// SECTION header; the payload follows it in the same frame.
struct SectionHeader {
  SectionKey key;
  uint32_t version = 0;

  friend bool operator==(const SectionHeader&, const SectionHeader&) = default;
};

struct SwitchoverAck {
  SectionKey device;
  uint32_t generation = 0;

  friend bool operator==(const SwitchoverAck&, const SwitchoverAck&) = default;
};

/// Payload encoders (the bytes that go inside a frame).
[[nodiscard]] std::vector<uint8_t> encode_setup(const SetupMessage& message);
[[nodiscard]] std::vector<uint8_t> encode_setup_accept(const SetupAccept& message);
/// The SECTION frame's leading bytes; the section payload is appended after them.
[[nodiscard]] std::vector<uint8_t> encode_section_header(const SectionHeader& header);
[[nodiscard]] std::vector<uint8_t> encode_u32(uint32_t value);  ///< PING, PONG, ROUND, FLUSH
[[nodiscard]] std::vector<uint8_t> encode_u64(uint64_t value);  ///< LOADED, RESUMED
[[nodiscard]] std::vector<uint8_t> encode_text(std::string_view text);  ///< ERROR, CANCEL
[[nodiscard]] std::vector<uint8_t> encode_switchover_ack(const SwitchoverAck& ack);

/// Payload decoders. Each fails when `frame.type` is not its type, or when
/// the payload is shorter or longer than the layout, naming the frame type
/// ("PONG: payload is 3 bytes, expected 4").
[[nodiscard]] Result<SetupMessage> decode_setup(const Frame& frame);
[[nodiscard]] Result<SetupAccept> decode_setup_accept(const Frame& frame);
/// The header and the payload bytes that follow it (a view into `frame`).
struct SectionFrame {
  SectionHeader header;
  std::span<const uint8_t> payload;
};
[[nodiscard]] Result<SectionFrame> decode_section(const Frame& frame);
[[nodiscard]] Result<uint32_t> decode_u32(const Frame& frame);
[[nodiscard]] Result<uint64_t> decode_u64(const Frame& frame);
[[nodiscard]] Result<std::string> decode_text(const Frame& frame);
[[nodiscard]] Result<SwitchoverAck> decode_switchover_ack(const Frame& frame);
/// Empty-payload types (COMPLETE, GO): fails when the payload is not empty.
[[nodiscard]] Result<void> decode_empty(const Frame& frame);

/// Checks a return-path frame before it is acted on (R57): a known
/// return-path type and a payload length its layout allows (PONG 4 bytes,
/// LOADED and RESUMED 8, SETUP_ACCEPT 9, SWITCHOVER_ACK and ERROR their
/// encoded lengths). Errors name the message.
[[nodiscard]] Result<void> validate_return_path_frame(const Frame& frame);

/// Sends frames on one direction of a connection. Not thread-safe: one
/// thread writes a direction.
class FrameWriter {
 public:
  explicit FrameWriter(Connection& connection) : connection_(connection) {}
  /// Sends one frame whose payload is `head` followed by `body` (so a
  /// section payload is sent from where it lies, without a copy).
  [[nodiscard]] Result<void> send(FrameType type, std::span<const uint8_t> head,
                                  std::span<const uint8_t> body = {});
  /// Payload bytes plus framing sent so far.
  [[nodiscard]] uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  Connection& connection_;
  uint64_t bytes_sent_ = 0;
};

/// Receives frames from one direction of a connection.
class FrameReader {
 public:
  explicit FrameReader(Connection& connection) : connection_(connection) {}
  /// Reads one frame; verifies its length limit and checksum ("SECTION
  /// frame checksum mismatch: stream corrupted").
  [[nodiscard]] Result<Frame> read();
  [[nodiscard]] uint64_t bytes_received() const { return bytes_received_; }

 private:
  Connection& connection_;
  uint64_t bytes_received_ = 0;
};

/// Sends our hello and reads the peer's; fails when the peer speaks another
/// protocol version ("protocol version: ours 1, peer 2") or the magic is wrong.
[[nodiscard]] Result<Hello> exchange_hello(Connection& connection, const Hello& ours);
/// The two halves of exchange_hello(), for a caller that waits in between
/// (cancellably, with a timeout) before it reads.
[[nodiscard]] Result<void> send_hello(Connection& connection, const Hello& ours);
[[nodiscard]] Result<Hello> receive_hello(Connection& connection, const Hello& ours);

}  // namespace godwit::migration::wire
