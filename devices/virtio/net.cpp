// virtio-net over a tap (see net.h): config space, the transmit and receive
// paths, link status, counters and snapshot state.
//
// Receive path, one frame at a time:
//   1. no frame held: stop if the guest posted no chain (the frames wait in
//      the tap), else read one frame from the tap (stop on EAGAIN);
//   2. without MRG_RXBUF: pop one chain; a frame that does not fit is
//      dropped and the chain completed with length 0;
//   3. with MRG_RXBUF: pop chains until their room covers the frame; if the
//      ring runs dry first, the pops are undone (Queue::restore of the state
//      saved before) and the frame stays held until the guest posts more
//      (dropped only when even a full ring is too small);
//   4. header (num_buffers = chains used) and frame are copied in through
//      ChainWriter, which marks the VMM-side dirty bitmap.
#include "devices/virtio/net.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/log.h"

namespace godwit::virtio {
namespace {

/// The config space bytes for `mac` and `link_up`.
std::array<uint8_t, kNetConfigSize> config_bytes(const MacAddress& mac, bool link_up) {
  std::array<uint8_t, kNetConfigSize> bytes{};
  std::copy(mac.begin(), mac.end(), bytes.begin());
  uint16_t status = link_up ? kNetStatusLinkUp : 0;
  uint16_t max_pairs = 1;
  std::memcpy(&bytes[6], &status, 2);
  std::memcpy(&bytes[8], &max_pairs, 2);
  return bytes;
}

/// The value of one hex digit, or -1.
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<MacAddress> parse_mac(std::string_view text) {
  std::string quoted = "MAC address \"" + std::string(text) + "\"";
  if (text.size() != 17) return fail(quoted + ": want six hex pairs like 52:54:00:12:34:56");
  MacAddress mac{};
  for (size_t i = 0; i < mac.size(); ++i) {
    int high = hex_digit(text[3 * i]);
    int low = hex_digit(text[3 * i + 1]);
    bool separator_ok = i == 5 || text[3 * i + 2] == ':' || text[3 * i + 2] == '-';
    if (high < 0 || low < 0 || !separator_ok) {
      return fail(quoted + ": want six hex pairs like 52:54:00:12:34:56");
    }
    mac[i] = static_cast<uint8_t>(high * 16 + low);
  }
  if (mac[0] & 1) {
    return fail(quoted + ": multicast address (bit 0 of the first byte is set); a NIC needs a " +
                "unicast address, e.g. 52:54:00:xx:xx:xx");
  }
  return mac;
}

std::string format_mac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return text;
}

Result<std::unique_ptr<VirtioNet>> VirtioNet::open(GuestMemory& memory, std::string name,
                                                   const NetOptions& options) {
  MacAddress mac = options.mac == MacAddress{} ? kDefaultMac : options.mac;
  if (mac[0] & 1) {
    return fail(name + ": MAC address " + format_mac(mac) + " is multicast; a NIC needs unicast");
  }
  auto tap = Tap::open(options.tap);
  if (!tap) return fail(tap.error().context(name));
  return std::unique_ptr<VirtioNet>(new VirtioNet(memory, std::move(name), std::move(*tap), mac));
}

VirtioNet::VirtioNet(GuestMemory& memory, std::string name, Tap tap, const MacAddress& mac)
    : memory_(memory),
      name_(std::move(name)),
      tap_(std::move(tap)),
      mac_(mac),
      // One byte more than the largest accepted frame: a full read means oversized.
      rx_frame_(kVnetHeaderSize + kMaxFrameSize + 1),
      tx_frame_(kVnetHeaderSize + kMaxFrameSize) {}

VirtioNet::~VirtioNet() = default;

uint64_t VirtioNet::offered_features() const {
  return kNetFeatureMac | kNetFeatureStatus | kNetFeatureMrgRxbuf;
}

void VirtioNet::read_config(uint64_t offset, std::span<uint8_t> data) const {
  auto bytes = config_bytes(mac_, link_up_.load());
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t at = offset + i;
    data[i] = at >= offset && at < bytes.size() ? bytes[at] : 0;
  }
}

void VirtioNet::write_config(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}

Result<void> VirtioNet::activate(uint64_t negotiated_features, std::span<Queue> queues,
                                 VirtioInterrupt& interrupt) {
  if (queues.size() != 2) {
    return fail(name_ + ": activate with " + std::to_string(queues.size()) + " queues, want 2");
  }
  rx_queue_ = &queues[kNetRxQueue];
  tx_queue_ = &queues[kNetTxQueue];
  mergeable_rx_ = (negotiated_features & kNetFeatureMrgRxbuf) != 0;
  event_idx_ = (negotiated_features & kFeatureEventIdx) != 0;
  interrupt_.store(&interrupt);
  return {};
}

void VirtioNet::reset() {
  interrupt_.store(nullptr);
  rx_queue_ = nullptr;
  tx_queue_ = nullptr;
  mergeable_rx_ = false;
  event_idx_ = false;
  if (rx_frame_len_ != 0) ++counters_.rx_dropped;
  rx_frame_len_ = 0;
}

Result<void> VirtioNet::process_queue(uint16_t index) {
  if (index == kNetRxQueue) return process_rx();
  if (index == kNetTxQueue) return process_tx();
  return {};
}

Result<void> VirtioNet::process_event(int fd) {
  if (fd != tap_.fd()) return {};
  return process_rx();
}

Result<void> VirtioNet::notify_driver(Queue& queue, Result<void> outcome) {
  // Chains completed before an error still deserve their interrupt.
  auto notify = queue.needs_notification();
  if (!notify) return fail(notify.error());
  if (*notify) {
    if (VirtioInterrupt* irq = interrupt_.load()) irq->signal_used_buffer();
  }
  return outcome;
}

Result<bool> VirtioNet::rearm_notification(Queue& queue, uint16_t seen) {
  if (!event_idx_) return false;  // the driver notifies on every new chain
  TRY_VOID(queue.set_avail_event());
  return TRY(queue.available()) > seen;
}

// ---- transmit ----

Result<void> VirtioNet::process_tx() {
  // A broken queue was reported when it broke; the driver must reset.
  if (!tx_queue_ || !tx_queue_->ready() || tx_queue_->broken()) return {};
  Queue& queue = *tx_queue_;
  auto drain = [&]() -> Result<void> {
    while (true) {
      while (auto chain = TRY(queue.pop())) {
        TRY_VOID(transmit_chain(*chain));
        TRY_VOID(queue.add_used(chain->head, 0));
      }
      if (!TRY(rearm_notification(queue, 0))) return {};
    }
  };
  return notify_driver(queue, drain());
}

Result<void> VirtioNet::transmit_chain(const DescriptorChain& chain) {
  uint32_t total = chain.readable_bytes;
  if (total < kVnetHeaderSize || total - kVnetHeaderSize > kMaxFrameSize) {
    ++counters_.tx_errors;
    log::debug(name_ + ": dropping a transmit chain of " + std::to_string(total) +
               " bytes (header " + std::to_string(kVnetHeaderSize) +
               " + frame <= " + std::to_string(kMaxFrameSize) + ")");
    return {};
  }
  // Copy first: the guest cannot change the bytes while the tap reads them,
  // and the header can be cleaned. No offload was negotiated, so the header
  // sent to the tap is all zero whatever the guest wrote.
  ChainReader reader(memory_, chain);
  TRY_VOID(reader.read(std::span(tx_frame_.data(), total)));
  std::memset(tx_frame_.data(), 0, kVnetHeaderSize);
  iovec pieces[2] = {{tx_frame_.data(), kVnetHeaderSize},
                     {tx_frame_.data() + kVnetHeaderSize, total - kVnetHeaderSize}};
  auto sent = tap_.write_frame(pieces);
  if (!sent || !*sent) {
    // A backend refusal (queue full, a frame the kernel rejects) loses this
    // frame only, as a NIC would; the guest is not told.
    ++counters_.tx_errors;
    if (!sent) log::debug(name_ + ": " + sent.error().message);
    return {};
  }
  ++counters_.tx_frames;
  counters_.tx_bytes += total - kVnetHeaderSize;
  return {};
}

// ---- receive ----

Result<void> VirtioNet::process_rx() {
  // A broken queue was reported when it broke (not again at every frame).
  if (!rx_queue_ || !rx_queue_->ready() || rx_queue_->broken()) return {};
  return notify_driver(*rx_queue_, receive_frames());
}

Result<void> VirtioNet::receive_frames() {
  Queue& queue = *rx_queue_;
  while (true) {
    if (rx_frame_len_ == 0) {
      if (TRY(queue.available()) == 0) {
        if (TRY(rearm_notification(queue, 0))) continue;
        return {};  // the frames wait in the tap for the next process_queue(0)
      }
      auto got = TRY(tap_.read_frame(rx_frame_));
      if (!got) return {};  // the tap is empty: wait for the next edge
      VirtioNetHeader from_tap{};
      if (*got >= kVnetHeaderSize) std::memcpy(&from_tap, rx_frame_.data(), kVnetHeaderSize);
      if (*got <= kVnetHeaderSize || *got >= rx_frame_.size() ||
          from_tap.gso_type != 0) {  // TUNSETOFFLOAD 0 means no GSO; never hand it on
        ++counters_.rx_dropped;
        continue;
      }
      rx_frame_len_ = *got;
    }
    uint16_t seen = TRY(queue.available());
    if (TRY(deliver_held_frame())) continue;
    if (!TRY(rearm_notification(queue, seen))) return {};
  }
}

Result<bool> VirtioNet::deliver_held_frame() {
  Queue& queue = *rx_queue_;
  rx_chains_.clear();
  if (!mergeable_rx_) {
    auto chain = TRY(queue.pop());
    if (!chain) return false;
    rx_chains_.push_back(std::move(*chain));
    if (rx_chains_[0].writable_bytes < rx_frame_len_) {
      TRY_VOID(drop_held_frame(rx_chains_));
      return true;
    }
    TRY_VOID(write_frame_to_chains(rx_chains_));
    return true;
  }

  QueueState before = queue.state();
  uint64_t room = 0;
  while (room < rx_frame_len_) {
    auto chain = TRY(queue.pop());
    if (!chain) {
      if (rx_chains_.size() == before.size) break;  // a full ring is too small: drop
      TRY_VOID(queue.restore(before));              // undo the pops; wait for more
      rx_chains_.clear();
      return false;
    }
    room += chain->writable_bytes;
    rx_chains_.push_back(std::move(*chain));
  }
  // Each buffer must hold at least the header (spec 5.1.6.3.1); the header
  // goes into the first one.
  if (room < rx_frame_len_ || rx_chains_[0].writable_bytes < kVnetHeaderSize) {
    TRY_VOID(drop_held_frame(rx_chains_));
    return true;
  }
  TRY_VOID(write_frame_to_chains(rx_chains_));
  return true;
}

Result<void> VirtioNet::write_frame_to_chains(std::span<const DescriptorChain> chains) {
  VirtioNetHeader header{};  // flags 0 and GSO_NONE: nothing was offloaded
  header.num_buffers = static_cast<uint16_t>(chains.size());
  std::memcpy(rx_frame_.data(), &header, sizeof header);
  std::span<const uint8_t> left(rx_frame_.data(), rx_frame_len_);
  for (const DescriptorChain& chain : chains) {
    ChainWriter writer(memory_, chain);
    size_t part = std::min<size_t>(left.size(), writer.remaining());
    TRY_VOID(writer.write(left.first(part)));  // marks the VMM-side dirty bitmap
    left = left.subspan(part);
    TRY_VOID(rx_queue_->add_used(chain.head, writer.written()));
  }
  ++counters_.rx_frames;
  counters_.rx_bytes += rx_frame_len_ - kVnetHeaderSize;
  rx_frame_len_ = 0;
  return {};
}

Result<void> VirtioNet::drop_held_frame(std::span<const DescriptorChain> chains) {
  log::debug(name_ + ": dropping a received frame of " +
             std::to_string(rx_frame_len_ - kVnetHeaderSize) + " bytes: the receive buffers (" +
             std::to_string(chains.size()) + " chains) are too small");
  for (const DescriptorChain& chain : chains) TRY_VOID(rx_queue_->add_used(chain.head, 0));
  ++counters_.rx_dropped;
  rx_frame_len_ = 0;
  return {};
}

// ---- link, counters, state ----

void VirtioNet::set_link_up(bool up) {
  if (link_up_.exchange(up) == up) return;
  if (VirtioInterrupt* irq = interrupt_.load()) irq->signal_config_change();
}

std::vector<std::pair<std::string, uint64_t>> VirtioNet::counters() const {
  return {{"rx_frames", counters_.rx_frames},   {"rx_bytes", counters_.rx_bytes},
          {"rx_dropped", counters_.rx_dropped}, {"tx_frames", counters_.tx_frames},
          {"tx_bytes", counters_.tx_bytes},     {"tx_errors", counters_.tx_errors}};
}

std::vector<std::pair<std::string, std::string>> VirtioNet::properties() const {
  return {{"tap", tap_.name()}, {"mac", format_mac(mac_)}, {"link", link_up() ? "up" : "down"}};
}

Result<DeviceState> VirtioNet::state() const {
  DeviceState state{kDeviceIdNet, std::vector<uint8_t>(kNetStateSize + 4 + rx_frame_len_)};
  state.data[0] = kNetStateVersion;
  std::copy(mac_.begin(), mac_.end(), state.data.begin() + 1);
  state.data[7] = link_up() ? 1 : 0;
  const auto held = static_cast<uint32_t>(rx_frame_len_);
  for (size_t i = 0; i < 4; ++i)
    state.data[kNetStateSize + i] = static_cast<uint8_t>(held >> (8 * i));
  std::copy_n(rx_frame_.begin(), rx_frame_len_, state.data.begin() + kNetStateSize + 4);
  return state;
}

Result<void> VirtioNet::restore(const DeviceState& state) {
  const auto& d = state.data;
  const uint8_t version = d.empty() ? 0 : d[0];
  uint32_t held = 0;
  bool ok = state.device_id == kDeviceIdNet && d.size() >= kNetStateSize && d[7] <= 1;
  if (ok && version == 1) {
    ok = d.size() == kNetStateSize;
  } else if (ok && version == 2) {
    ok = d.size() >= kNetStateSize + 4;
    for (size_t i = 0; ok && i < 4; ++i) held |= uint32_t{d[kNetStateSize + i]} << (8 * i);
    // A held frame is a whole frame with its header, as receive_frames() accepts it.
    ok = ok && d.size() == kNetStateSize + 4 + held &&
         (held == 0 || (held > kVnetHeaderSize && held < rx_frame_.size()));
  } else {
    ok = false;
  }
  if (!ok) {
    return fail(name_ + ": restore of device id " + std::to_string(state.device_id) + " with " +
                std::to_string(d.size()) + " bytes (version " + std::to_string(version) +
                "); want id 1, version 1 (8 bytes) or 2 (12 bytes + a held frame of 13.." +
                std::to_string(rx_frame_.size() - 1) + " bytes)");
  }
  std::copy(d.begin() + 1, d.begin() + 7, mac_.begin());
  link_up_.store(d[7] == 1);
  std::copy_n(d.begin() + kNetStateSize + 4, held, rx_frame_.begin());
  rx_frame_len_ = held;
  return {};
}

}  // namespace godwit::virtio
