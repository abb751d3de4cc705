// virtio-net (device id 1) over a Linux tap device: a receive queue (0) and a
// transmit queue (1); the MAC address and link status in config space
// (VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS) and mergeable receive buffers
// (VIRTIO_NET_F_MRG_RXBUF). The tap is opened with
// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR so the 12-byte virtio_net_hdr passes
// through unchanged. Frames arriving on the tap are copied into the guest's
// receive buffers (every byte marks the VMM-side dirty bitmap); with no
// buffer posted they wait in the tap's queue until the guest posts more.
// No offloads are offered (no CSUM, GUEST_CSUM, TSO/UFO, CTRL_VQ, MQ, MTU):
// frames are fully checksummed and at most kMaxFrameSize bytes both ways.
//
//   config space (struct virtio_net_config, little-endian, 10 bytes)
//   | mac[6] | status le16 (bit 0 LINK_UP) | max_virtqueue_pairs le16 (1) |
//
//   DeviceState.data (device id 1; version 2 written, 1 and 2 read)
//   | version u8 (2) | mac[6] | link_up u8 (0 / 1) |
//   | held_len u32 le | held frame (held_len bytes, virtio_net_hdr first) |
//   Version 1 is the first 8 bytes alone. The held frame is one read from
//   the tap that waits for receive buffers: it is guest data in flight, so it
//   is saved and delivered after a restore instead of being lost.
//
// Threading: every VirtioDevice call comes under the transport lock (queue
// notifications, tap readability through process_event()); set_link_up() may
// be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "devices/virtio/device.h"
#include "devices/virtio/tap.h"

namespace godwit::virtio {

/// Virtio device id of the network device.
inline constexpr uint32_t kDeviceIdNet = 1;

/// An Ethernet MAC address.
using MacAddress = std::array<uint8_t, 6>;

/// Queue sizes (QueueNumMax) of the receive and transmit queues.
inline constexpr uint16_t kNetQueueSize = 256;
/// Index of the receive queue.
inline constexpr uint16_t kNetRxQueue = 0;
/// Index of the transmit queue.
inline constexpr uint16_t kNetTxQueue = 1;
/// VIRTIO_NET_F_MAC (bit 5): the MAC address in config space is valid.
inline constexpr uint64_t kNetFeatureMac = 1ull << 5;
/// VIRTIO_NET_F_MRG_RXBUF (bit 15): a received frame may span several chains.
inline constexpr uint64_t kNetFeatureMrgRxbuf = 1ull << 15;
/// VIRTIO_NET_F_STATUS (bit 16): the status field in config space is valid.
inline constexpr uint64_t kNetFeatureStatus = 1ull << 16;
/// VIRTIO_NET_S_LINK_UP: bit 0 of the config status field.
inline constexpr uint16_t kNetStatusLinkUp = 1;
/// Bytes of config space (mac, status, max_virtqueue_pairs).
inline constexpr uint64_t kNetConfigSize = 10;
/// Bytes of a version-1 VirtioNet::state() (layout in the file comment);
/// version 2 adds a u32 length and the held frame.
inline constexpr size_t kNetStateSize = 8;
/// The DeviceState layout version VirtioNet::state() writes.
inline constexpr uint8_t kNetStateVersion = 2;

/// The MAC used when NetOptions::mac is all zero (QEMU's customary first one).
inline constexpr MacAddress kDefaultMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

/// struct virtio_net_hdr_v1: in front of every frame in both queues.
struct VirtioNetHeader {
  uint8_t flags = 0;         ///< NEEDS_CSUM / DATA_VALID: always 0 here (no offloads)
  uint8_t gso_type = 0;      ///< VIRTIO_NET_HDR_GSO_NONE (0) here
  uint16_t hdr_len = 0;      ///< GSO only
  uint16_t gso_size = 0;     ///< GSO only
  uint16_t csum_start = 0;   ///< NEEDS_CSUM only
  uint16_t csum_offset = 0;  ///< NEEDS_CSUM only
  uint16_t num_buffers = 0;  ///< RX: chains the frame spans (1 without MRG_RXBUF)
};
static_assert(sizeof(VirtioNetHeader) == kVnetHeaderSize);

/// Parses "52:54:00:12:34:56" (hex pairs, ':' or '-'); refuses multicast
/// (and broadcast) addresses, which cannot be a station's address.
[[nodiscard]] Result<MacAddress> parse_mac(std::string_view text);
/// "52:54:00:12:34:56" (lower-case hex).
[[nodiscard]] std::string format_mac(const MacAddress& mac);

/// How a network device is opened (from `--net tap=NAME,mac=...`).
struct NetOptions {
  std::string tap;   ///< tap interface name (created if absent, as TUNSETIFF does)
  MacAddress mac{};  ///< the guest's MAC, shown in config space
};

/// The virtio network device.
class VirtioNet : public VirtioDevice {
 public:
  /// Opens (attaches to) tap `options.tap`; fails naming the tap and the
  /// reason, or for a multicast MAC. An all-zero MAC means kDefaultMac.
  [[nodiscard]] static Result<std::unique_ptr<VirtioNet>> open(GuestMemory& memory,
                                                               std::string name,
                                                               const NetOptions& options);
  ~VirtioNet() override;
  VirtioNet(const VirtioNet&) = delete;
  VirtioNet& operator=(const VirtioNet&) = delete;

  /// 1 (network).
  [[nodiscard]] uint32_t device_id() const override { return kDeviceIdNet; }
  /// The instance name ("net0").
  [[nodiscard]] std::string_view name() const override { return name_; }
  /// MAC, STATUS and MRG_RXBUF.
  [[nodiscard]] uint64_t offered_features() const override;
  /// Receive and transmit queue, kNetQueueSize each.
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override {
    return {kNetQueueSize, kNetQueueSize};
  }
  /// struct virtio_net_config (see the file comment); bytes beyond read 0.
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  /// Config space is read-only for a virtio 1.x driver: ignored.
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  /// Keeps the two queues and the interrupt; MRG_RXBUF as negotiated.
  [[nodiscard]] Result<void> activate(uint64_t negotiated_features, std::span<Queue> queues,
                                      VirtioInterrupt& interrupt) override;
  /// Forgets queues and interrupt; a frame held for the guest is dropped.
  void reset() override;
  /// 0: the guest posted receive buffers (take up frames waiting in the
  /// tap); 1: transmit every available chain.
  [[nodiscard]] Result<void> process_queue(uint16_t index) override;
  /// The tap's descriptor.
  [[nodiscard]] std::vector<int> event_fds() const override { return {tap_.fd()}; }
  /// The tap is readable: move frames into receive buffers while the guest
  /// has room (nothing while inactive: frames stay in the tap).
  [[nodiscard]] Result<void> process_event(int fd) override;
  /// rx_frames, rx_bytes, rx_dropped, tx_frames, tx_bytes, tx_errors
  /// (bytes count Ethernet frames without the vnet header).
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> counters() const override;
  /// tap, mac ("52:54:00:12:34:56"), link ("up" / "down").
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> properties() const override;
  /// MAC and link status (layout in the file comment).
  [[nodiscard]] Result<DeviceState> state() const override;
  /// Takes MAC and link status from state(); fails on another id, size or version.
  [[nodiscard]] Result<void> restore(const DeviceState& state) override;

  /// Sets the link status bit; when it changes on an active device, signals
  /// a configuration change so the driver re-reads it. Any thread.
  void set_link_up(bool up);
  /// Current link status.
  [[nodiscard]] bool link_up() const { return link_up_.load(); }
  /// The guest's MAC address.
  [[nodiscard]] const MacAddress& mac() const { return mac_; }

 private:
  /// Frame counters (see counters()).
  struct Counters {
    uint64_t rx_frames = 0;
    uint64_t rx_bytes = 0;
    uint64_t rx_dropped = 0;
    uint64_t tx_frames = 0;
    uint64_t tx_bytes = 0;
    uint64_t tx_errors = 0;
  };

  VirtioNet(GuestMemory& memory, std::string name, Tap tap, const MacAddress& mac);

  /// Sends every available transmit chain, then signals the driver.
  [[nodiscard]] Result<void> process_tx();
  /// Sends the frame of one transmit chain (drops and counts a bad one).
  [[nodiscard]] Result<void> transmit_chain(const DescriptorChain& chain);
  /// Moves frames from the tap into receive buffers, then signals the driver.
  [[nodiscard]] Result<void> process_rx();
  /// The loop of process_rx(): until the tap is empty or the guest has no room.
  [[nodiscard]] Result<void> receive_frames();
  /// Places the held frame; false when the guest needs to post more buffers.
  [[nodiscard]] Result<bool> deliver_held_frame();
  /// Writes the held frame across `chains` (header first) and completes them.
  [[nodiscard]] Result<void> write_frame_to_chains(std::span<const DescriptorChain> chains);
  /// Completes `chains` with used length 0 and counts the held frame as dropped.
  [[nodiscard]] Result<void> drop_held_frame(std::span<const DescriptorChain> chains);
  /// With EVENT_IDX, asks for a notification at the next available chain and
  /// returns whether more than `seen` chains are available by now.
  [[nodiscard]] Result<bool> rearm_notification(Queue& queue, uint16_t seen);
  /// Raises the used-buffer interrupt if `queue` wants one; keeps `outcome`.
  [[nodiscard]] Result<void> notify_driver(Queue& queue, Result<void> outcome);

  GuestMemory& memory_;
  std::string name_;
  Tap tap_;
  MacAddress mac_;
  std::atomic<bool> link_up_{true};
  std::atomic<VirtioInterrupt*> interrupt_{nullptr};
  Queue* rx_queue_ = nullptr;
  Queue* tx_queue_ = nullptr;
  bool mergeable_rx_ = false;
  bool event_idx_ = false;
  std::vector<uint8_t> rx_frame_;           ///< the frame read from the tap, header first
  size_t rx_frame_len_ = 0;                 ///< bytes of rx_frame_ held (0: none)
  std::vector<uint8_t> tx_frame_;           ///< one transmit chain's bytes, header first
  std::vector<DescriptorChain> rx_chains_;  ///< chains gathered for one frame (reused)
  Counters counters_;
};

}  // namespace godwit::virtio
