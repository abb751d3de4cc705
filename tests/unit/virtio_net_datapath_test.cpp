// virtio-net data path through a real tap (issue 3, item 5), each test in its
// own network namespace (netns_util.h; skipped unless root with
// /dev/net/tun). A file-local driver builds both rings in a 2 MiB
// GuestMemory like a guest would; the host side is the kernel itself (ARP)
// or an AF_PACKET socket on the tap. Covered: ARP request out and the
// kernel's reply in, with the receive buffer marked in the VMM-side dirty
// bitmap; TX seen on the host with a cleaned vnet header; short and
// oversized TX frames dropped and counted with the device alive; RX waiting
// for buffers (and while inactive) then delivered; a frame too large for a
// chain dropped; MRG_RXBUF spanning chains and waiting for enough room.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/net.h"
#include "tests/test_util.h"
#include "tests/unit/netns_util.h"
#include "unit/virtio_test_driver.h"

namespace godwit::virtio {
namespace {

constexpr char kTap[] = "gwtest0";
constexpr MacAddress kGuestMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint16_t kSize = 16;
constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE local experimental

/// Where one queue's rings live.
struct RingLayout {
  uint64_t desc, avail, used;
};
constexpr RingLayout kRxRings{0x1000, 0x2000, 0x3000};
constexpr RingLayout kTxRings{0x4000, 0x5000, 0x6000};
constexpr uint64_t kRxDataGpa = 0x10000;  // receive buffers, one page each
constexpr uint64_t kTxDataGpa = 0x40000;  // transmit buffers
constexpr uint64_t kBigGpa = 0x100000;    // room for an oversized frame

/// One guest buffer of a chain.
struct Buffer {
  uint64_t gpa;
  uint32_t len;
  bool device_writable;
};

/// Plays the driver of one queue: descriptors, avail ring, reading used.
class DriverQueue {
 public:
  DriverQueue(GuestMemory& memory, RingLayout rings) : memory_(memory), rings_(rings) {}

  /// Makes a chain of `buffers` available; returns its head.
  uint16_t add_chain(std::initializer_list<Buffer> buffers) {
    uint16_t head = next_desc_;
    size_t i = 0;
    for (const Buffer& b : buffers) {
      uint16_t index = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % kSize);
      bool last = ++i == buffers.size();
      uint16_t flags = static_cast<uint16_t>((b.device_writable ? kDescFlagWrite : 0) |
                                             (last ? 0 : kDescFlagNext));
      poke(rings_.desc + 16ull * index, Descriptor{b.gpa, b.len, flags, next_desc_});
    }
    poke<uint16_t>(rings_.avail + 4 + 2ull * (avail_idx_ % kSize), head);
    poke<uint16_t>(rings_.avail + 2, ++avail_idx_);
    return head;
  }
  /// The used idx the device published.
  uint16_t used_idx() { return memory_.read_obj<uint16_t>(rings_.used + 2).value(); }
  /// Used entry `slot`: {id, len}.
  std::pair<uint32_t, uint32_t> used(uint16_t slot) {
    uint64_t at = rings_.used + 4 + 8ull * (slot % kSize);
    return {memory_.read_obj<uint32_t>(at).value(), memory_.read_obj<uint32_t>(at + 4).value()};
  }
  /// avail_event (EVENT_IDX) as the device last wrote it.
  uint16_t avail_event() {
    return memory_.read_obj<uint16_t>(rings_.used + 4 + 8ull * kSize).value();
  }
  /// Writes like a guest: straight into host memory, not marked dirty.
  template <typename T>
  void poke(uint64_t gpa, const T& v) {
    std::memcpy(memory_.host_span(gpa, sizeof v).value().data(), &v, sizeof v);
  }

 private:
  GuestMemory& memory_;
  RingLayout rings_;
  uint16_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
};

using test::CountingInterrupt;

/// An Ethernet frame of `size` bytes to `dst` with a recognisable payload.
std::vector<uint8_t> test_frame(const MacAddress& dst, const MacAddress& src, size_t size,
                                uint8_t seed) {
  std::vector<uint8_t> frame(size);
  std::copy(dst.begin(), dst.end(), frame.begin());
  std::copy(src.begin(), src.end(), frame.begin() + 6);
  frame[12] = kTestEtherType >> 8;
  frame[13] = kTestEtherType & 0xff;
  for (size_t i = 14; i < size; ++i) frame[i] = static_cast<uint8_t>(seed + i * 7);
  return frame;
}

/// "Who has 10.0.2.2? Tell 10.0.2.15" from the guest's MAC, padded to 60 bytes.
std::vector<uint8_t> arp_request() {
  std::vector<uint8_t> frame(60, 0);
  std::fill_n(frame.begin(), 6, 0xff);
  std::copy(kGuestMac.begin(), kGuestMac.end(), frame.begin() + 6);
  const uint8_t arp[] = {0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1};  // type, htype..oper=request
  std::copy(std::begin(arp), std::end(arp), frame.begin() + 12);
  std::copy(kGuestMac.begin(), kGuestMac.end(), frame.begin() + 22);
  const uint8_t ips[] = {10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2};  // spa, tha, tpa
  std::copy(std::begin(ips), std::end(ips), frame.begin() + 28);
  return frame;
}

class VirtioNetTapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GODWIT_ENTER_TEST_NETNS(netns_);
    test::disable_ipv6();
    memory_ = test::make_guest_memory(2 * kMiB);
    ASSERT_TRUE(memory_);
    rx_.emplace(*memory_, kRxRings);
    tx_.emplace(*memory_, kTxRings);
    auto net = VirtioNet::open(*memory_, "net0", {.tap = kTap, .mac = kGuestMac});
    ASSERT_TRUE(net) << net.error().message;
    net_ = std::move(*net);
    ASSERT_EQ(test::configure_interface(kTap, "10.0.2.2", 24), "");
    host_ = test::open_packet_socket(kTap);
    ASSERT_TRUE(host_) << "AF_PACKET socket on " << kTap << ": " << std::strerror(errno);
    queues_.reserve(2);
    queues_.emplace_back(*memory_, "net0 rx", kNetQueueSize);
    queues_.emplace_back(*memory_, "net0 tx", kNetQueueSize);
  }
  void TearDown() override {
    net_.reset();
    host_.reset();
    netns_.leave();
  }

  /// DRIVER_OK with `features` (VERSION_1 added), both queues of kSize.
  void activate(uint64_t features) {
    features |= kFeatureVersion1;
    for (size_t i = 0; i < 2; ++i) {
      RingLayout rings = i == 0 ? kRxRings : kTxRings;
      queues_[i].set_size(kSize);
      queues_[i].set_desc_table(rings.desc);
      queues_[i].set_avail_ring(rings.avail);
      queues_[i].set_used_ring(rings.used);
      queues_[i].set_features(features);
      ASSERT_TRUE(queues_[i].activate().has_value());
    }
    ASSERT_TRUE(net_->activate(features, queues_, irq_).has_value());
  }

  /// Queues `frame` (behind a vnet header `header`) on the TX queue and
  /// notifies; the header and frame sit in separate descriptors.
  void transmit(const std::vector<uint8_t>& frame, const VirtioNetHeader& header = {}) {
    tx_->poke(kTxDataGpa, header);
    auto span = memory_->host_span(kTxDataGpa + 0x1000, frame.size()).value();
    std::copy(frame.begin(), frame.end(), span.begin());
    tx_->add_chain({{kTxDataGpa, sizeof header, false},
                    {kTxDataGpa + 0x1000, static_cast<uint32_t>(frame.size()), false}});
    ASSERT_TRUE(net_->process_queue(kNetTxQueue).has_value());
  }

  /// Posts one receive chain of `len` bytes in page `page` of the RX area.
  uint16_t post_rx(unsigned page, uint32_t len) {
    return rx_->add_chain({{kRxDataGpa + page * 0x1000ull, len, true}});
  }

  /// Sends `frame` out of the tap from the host side (towards the guest).
  void host_send(const std::vector<uint8_t>& frame) {
    ASSERT_EQ(::send(host_.get(), frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()))
        << std::strerror(errno);
    ASSERT_TRUE(test::wait_readable(net_->event_fds()[0])) << "the tap never became readable";
  }

  /// The next frame of kTestEtherType the host side receives from the guest.
  std::vector<uint8_t> host_receive() {
    std::vector<uint8_t> frame(70000);
    while (test::wait_readable(host_.get())) {
      ssize_t got = ::recv(host_.get(), frame.data(), frame.size(), 0);
      if (got >= 14 && frame[12] == (kTestEtherType >> 8) && frame[13] == (kTestEtherType & 0xff)) {
        frame.resize(static_cast<size_t>(got));
        return frame;
      }
    }
    return {};
  }

  /// Guest bytes at `gpa`.
  std::vector<uint8_t> guest_bytes(uint64_t gpa, size_t len) {
    auto span = memory_->host_span(gpa, len).value();
    return {span.begin(), span.end()};
  }

  uint64_t counter(const std::string& name) {
    for (const auto& [key, value] : net_->counters()) {
      if (key == name) return value;
    }
    ADD_FAILURE() << "no counter " << name;
    return 0;
  }

  test::ScopedNetns netns_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<VirtioNet> net_;
  UniqueFd host_;
  std::vector<Queue> queues_;
  CountingInterrupt irq_;
  std::optional<DriverQueue> rx_;  ///< the guest's side of the receive queue
  std::optional<DriverQueue> tx_;  ///< the guest's side of the transmit queue
};

// R5 (acceptance: VMM-side dirty marking for net RX): the guest's ARP request
// reaches the host kernel, whose reply lands in a receive buffer whose page
// is marked dirty, while an untouched buffer's page is not.
TEST_F(VirtioNetTapTest, ArpRequestOutKernelReplyInAndMarkedDirty) {
  activate(0);
  for (unsigned page = 0; page < 4; ++page) post_rx(page, 2048);
  DirtyBitmap& dirty = memory_->vmm_dirty(0);
  dirty.clear();

  transmit(arp_request());
  EXPECT_EQ(counter("tx_frames"), 1u);
  EXPECT_EQ(counter("tx_errors"), 0u);
  ASSERT_TRUE(test::wait_readable(net_->event_fds()[0])) << "no ARP reply from the kernel";
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());

  ASSERT_GE(rx_->used_idx(), 1) << "nothing received";
  auto [head, len] = rx_->used(0);
  ASSERT_EQ(head, 0u);
  ASSERT_GE(len, kVnetHeaderSize + 42);
  auto bytes = guest_bytes(kRxDataGpa, len);
  VirtioNetHeader header{};
  std::memcpy(&header, bytes.data(), sizeof header);
  EXPECT_EQ(header.flags, 0);
  EXPECT_EQ(header.gso_type, 0);
  EXPECT_EQ(header.num_buffers, 1) << "without MRG_RXBUF num_buffers must be 1";
  const uint8_t* frame = bytes.data() + kVnetHeaderSize;
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), frame)) << "not addressed to us";
  EXPECT_EQ(frame[12], 0x08);
  EXPECT_EQ(frame[13], 0x06) << "not ARP";
  EXPECT_EQ(frame[21], 2) << "not an ARP reply";
  const uint8_t sender_ip[] = {10, 0, 2, 2};
  EXPECT_TRUE(std::equal(std::begin(sender_ip), std::end(sender_ip), frame + 28));

  EXPECT_TRUE(dirty.test(kRxDataGpa / kPageSize)) << "RX bytes not marked in the VMM dirty bitmap";
  EXPECT_TRUE(dirty.test(kRxRings.used / kPageSize)) << "used ring not marked";
  EXPECT_FALSE(dirty.test(kRxDataGpa / kPageSize + 3)) << "an unused buffer was marked";
  EXPECT_GE(counter("rx_frames"), 1u);
  EXPECT_EQ(counter("rx_bytes"), len - kVnetHeaderSize);
  EXPECT_GE(irq_.used, 1);
}

// R5: a transmitted frame reaches the host unchanged; the guest's header is
// not passed on (a bogus checksum request would make the tap refuse it).
TEST_F(VirtioNetTapTest, TransmitReachesHostWithCleanedHeader) {
  activate(0);
  auto frame = test_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kGuestMac, 300, 3);
  VirtioNetHeader bogus{};
  bogus.flags = 1;  // NEEDS_CSUM, never negotiated
  bogus.csum_start = 60000;
  bogus.gso_type = 3;
  transmit(frame, bogus);
  EXPECT_EQ(tx_->used_idx(), 1);
  EXPECT_EQ(tx_->used(0).second, 0u) << "TX chains complete with length 0";
  EXPECT_EQ(irq_.used, 1);
  EXPECT_EQ(host_receive(), frame);
  EXPECT_EQ(counter("tx_frames"), 1u);
  EXPECT_EQ(counter("tx_bytes"), 300u);
}

// R5: a chain shorter than the header or a frame above 65550 bytes is
// dropped and counted, its chain completed, and the device keeps working.
TEST_F(VirtioNetTapTest, ShortAndOversizedTransmitDroppedDeviceAlive) {
  activate(0);
  tx_->add_chain({{kTxDataGpa, 8, false}});
  tx_->add_chain({{kTxDataGpa, kVnetHeaderSize, false},
                  {kBigGpa, static_cast<uint32_t>(kMaxFrameSize + 1), false}});
  ASSERT_TRUE(net_->process_queue(kNetTxQueue).has_value());
  EXPECT_EQ(tx_->used_idx(), 2);
  EXPECT_EQ(counter("tx_errors"), 2u);
  EXPECT_EQ(counter("tx_frames"), 0u);

  auto frame = test_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kGuestMac, 100, 9);
  transmit(frame);
  EXPECT_EQ(tx_->used_idx(), 3);
  EXPECT_EQ(counter("tx_frames"), 1u);
  EXPECT_EQ(host_receive(), frame);
}

// R5: with no receive buffer the frame stays in the tap; posting a buffer
// later (process_queue(0)) delivers it.
TEST_F(VirtioNetTapTest, ReceiveWaitsForBuffersThenDelivers) {
  activate(0);
  auto frame = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 200, 5);
  host_send(frame);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  EXPECT_EQ(counter("rx_frames"), 0u);
  EXPECT_EQ(counter("rx_dropped"), 0u);
  EXPECT_TRUE(test::wait_readable(net_->event_fds()[0], 0)) << "the frame left the tap";

  post_rx(0, 2048);
  ASSERT_TRUE(net_->process_queue(kNetRxQueue).has_value());
  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(rx_->used(0).second, kVnetHeaderSize + frame.size());
  EXPECT_EQ(guest_bytes(kRxDataGpa + kVnetHeaderSize, frame.size()), frame);
  EXPECT_EQ(irq_.used, 1);
  EXPECT_EQ(counter("rx_frames"), 1u);
}

// R5: frames arriving before DRIVER_OK stay in the tap and arrive once the
// guest posts buffers.
TEST_F(VirtioNetTapTest, InactiveDeviceLeavesFramesInTap) {
  auto frame = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 120, 7);
  host_send(frame);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  ASSERT_TRUE(net_->process_queue(kNetRxQueue).has_value());
  EXPECT_TRUE(test::wait_readable(net_->event_fds()[0], 0)) << "an inactive device read the tap";

  activate(0);
  post_rx(0, 2048);
  ASSERT_TRUE(net_->process_queue(kNetRxQueue).has_value());
  ASSERT_EQ(rx_->used_idx(), 1);
  EXPECT_EQ(guest_bytes(kRxDataGpa + kVnetHeaderSize, frame.size()), frame);
}

// R5: without MRG_RXBUF a frame larger than its chain is dropped (the chain
// completes with length 0) and the next frame uses the next chain.
TEST_F(VirtioNetTapTest, FrameTooLargeForChainIsDropped) {
  activate(0);
  post_rx(0, 256);
  post_rx(1, 2048);
  auto big = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 600, 1);
  auto small = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 100, 2);
  host_send(big);
  host_send(small);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  ASSERT_EQ(rx_->used_idx(), 2);
  EXPECT_EQ(rx_->used(0), std::make_pair(0u, 0u));
  EXPECT_EQ(rx_->used(1), std::make_pair(1u, static_cast<uint32_t>(kVnetHeaderSize + 100)));
  EXPECT_EQ(guest_bytes(kRxDataGpa + 0x1000 + kVnetHeaderSize, small.size()), small);
  EXPECT_EQ(counter("rx_dropped"), 1u);
  EXPECT_EQ(counter("rx_frames"), 1u);
}

// R5: with MRG_RXBUF a frame spans several chains; num_buffers says how many.
TEST_F(VirtioNetTapTest, MergeableFrameSpansChains) {
  activate(kNetFeatureMrgRxbuf);
  for (unsigned page = 0; page < 4; ++page) post_rx(page, 512);
  auto frame = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 1200, 4);
  host_send(frame);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  ASSERT_EQ(rx_->used_idx(), 3);
  EXPECT_EQ(rx_->used(0), std::make_pair(0u, 512u));
  EXPECT_EQ(rx_->used(1), std::make_pair(1u, 512u));
  EXPECT_EQ(rx_->used(2), std::make_pair(2u, static_cast<uint32_t>(kVnetHeaderSize + 1200 - 1024)));
  auto first = guest_bytes(kRxDataGpa, 512);
  VirtioNetHeader header{};
  std::memcpy(&header, first.data(), sizeof header);
  EXPECT_EQ(header.num_buffers, 3);
  std::vector<uint8_t> joined(first.begin() + kVnetHeaderSize, first.end());
  for (unsigned page = 1; page < 3; ++page) {
    auto part = guest_bytes(kRxDataGpa + page * 0x1000ull, page == 1 ? 512 : 188);
    joined.insert(joined.end(), part.begin(), part.end());
  }
  EXPECT_EQ(joined, frame);
  EXPECT_EQ(irq_.used, 1);
  EXPECT_EQ(counter("rx_bytes"), 1200u);
}

// R5: with MRG_RXBUF and too little room posted, nothing is consumed (the
// pops are undone, avail_event asks for the next chain) until the guest
// posts enough; then the frame arrives whole.
TEST_F(VirtioNetTapTest, MergeableFrameWaitsForEnoughRoom) {
  activate(kNetFeatureMrgRxbuf | kFeatureEventIdx);
  post_rx(0, 512);
  auto small = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 64, 6);
  host_send(small);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  ASSERT_EQ(rx_->used_idx(), 1);

  post_rx(1, 512);
  auto frame = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 900, 8);
  host_send(frame);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  EXPECT_EQ(rx_->used_idx(), 1) << "a partial frame was published";
  EXPECT_EQ(rx_->avail_event(), 1) << "avail_event should point at the waiting chain";
  EXPECT_EQ(counter("rx_dropped"), 0u);

  post_rx(2, 512);
  ASSERT_TRUE(net_->process_queue(kNetRxQueue).has_value());
  ASSERT_EQ(rx_->used_idx(), 3);
  EXPECT_EQ(rx_->used(1), std::make_pair(1u, 512u));
  EXPECT_EQ(rx_->used(2), std::make_pair(2u, static_cast<uint32_t>(kVnetHeaderSize + 900 - 512)));
  auto tail = guest_bytes(kRxDataGpa + 0x2000, kVnetHeaderSize + 900 - 512);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), frame.end() - tail.size()));
  EXPECT_EQ(counter("rx_frames"), 2u);
}

// In-flight data (issue 4): a frame already read from the tap that waits for
// receive room is saved with the device state; after the reset a transport
// restore starts with, restoring the state delivers it whole.
TEST_F(VirtioNetTapTest, HeldFrameSurvivesStateRoundTrip) {
  const uint64_t features = kNetFeatureMrgRxbuf | kFeatureEventIdx;
  activate(features);
  post_rx(0, 512);
  auto frame = test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 900, 8);
  host_send(frame);
  ASSERT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  ASSERT_EQ(rx_->used_idx(), 0) << "the frame needs a second buffer";

  DeviceState saved = net_->state().value();
  EXPECT_EQ(saved.data[0], kNetStateVersion);
  const size_t held = kVnetHeaderSize + frame.size();
  ASSERT_EQ(saved.data.size(), kNetStateSize + 4 + held);
  EXPECT_EQ(saved.data[8] | saved.data[9] << 8 | saved.data[10] << 16 | saved.data[11] << 24,
            static_cast<int>(held));

  net_->reset();
  EXPECT_EQ(net_->state().value().data.size(), kNetStateSize + 4) << "reset keeps a held frame";
  ASSERT_TRUE(net_->restore(saved).has_value());
  EXPECT_EQ(net_->state().value(), saved);
  ASSERT_TRUE(net_->activate(features | kFeatureVersion1, queues_, irq_).has_value());
  post_rx(1, 512);
  ASSERT_TRUE(net_->process_queue(kNetRxQueue).has_value());
  ASSERT_EQ(rx_->used_idx(), 2);
  EXPECT_EQ(rx_->used(0), std::make_pair(0u, 512u));
  EXPECT_EQ(rx_->used(1), std::make_pair(1u, static_cast<uint32_t>(held - 512)));
  auto first = guest_bytes(kRxDataGpa + kVnetHeaderSize, 512 - kVnetHeaderSize);
  auto second = guest_bytes(kRxDataGpa + 0x1000, held - 512);
  first.insert(first.end(), second.begin(), second.end());
  EXPECT_EQ(first, frame);
}

// R8: a receive ring the guest broke is an error once (the transport enters
// NEEDS_RESET); later tap events are ignored instead of failing again.
TEST_F(VirtioNetTapTest, BrokenReceiveRingReportedOnce) {
  activate(0);
  rx_->poke<uint16_t>(kRxRings.avail + 4, kSize + 3);  // head out of range
  rx_->poke<uint16_t>(kRxRings.avail + 2, 1);
  host_send(test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 80, 1));
  auto r = net_->process_event(net_->event_fds()[0]);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("net0 rx"), std::string::npos) << r.error().message;
  EXPECT_TRUE(queues_[kNetRxQueue].broken());
  host_send(test_frame(kGuestMac, {0x02, 0, 0, 0, 0, 1}, 80, 2));
  EXPECT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  EXPECT_TRUE(net_->process_queue(kNetRxQueue).has_value());
}

}  // namespace
}  // namespace godwit::virtio
