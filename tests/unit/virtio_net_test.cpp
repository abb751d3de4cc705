// virtio-net device surface (issue 3, item 5): MAC parsing and formatting,
// open() errors, features, queue sizes, config space bytes, link status with
// its config-change interrupt, counters and properties, and the snapshot
// state. Tests that open a tap run in a private network namespace
// (netns_util.h) and skip unless root with /dev/net/tun; the data path is in
// virtio_net_datapath_test.cpp.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/net.h"
#include "tests/test_util.h"
#include "tests/unit/netns_util.h"
#include "unit/virtio_test_driver.h"

namespace godwit::virtio {
namespace {

constexpr char kTap[] = "gwtest1";
constexpr MacAddress kMac{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

using test::CountingInterrupt;

TEST(NetMacTest, ParsesAndFormats) {
  auto mac = parse_mac("52:54:00:AB:cd:EF");
  ASSERT_TRUE(mac) << mac.error().message;
  EXPECT_EQ(*mac, kMac);
  EXPECT_EQ(format_mac(*mac), "52:54:00:ab:cd:ef");
  EXPECT_EQ(parse_mac("52-54-00-ab-cd-ef").value(), kMac);
}

TEST(NetMacTest, RefusesMalformedAndMulticast) {
  for (const char* bad : {"", "52:54:00:12:34", "52:54:00:12:34:5g", "52:54:00:12:34:567",
                          "52.54.00.12.34.56", "5254:00:12:34:56:"}) {
    auto mac = parse_mac(bad);
    ASSERT_FALSE(mac) << bad;
    EXPECT_NE(mac.error().message.find(bad), std::string::npos) << mac.error().message;
  }
  auto multicast = parse_mac("01:00:5e:00:00:01");
  ASSERT_FALSE(multicast);
  EXPECT_NE(multicast.error().message.find("multicast"), std::string::npos);
  EXPECT_FALSE(parse_mac("ff:ff:ff:ff:ff:ff")) << "broadcast is multicast too";
}

TEST(NetOpenTest, BadNamesAndMulticastMacFailClearly) {
  auto memory = test::make_guest_memory(kMiB);
  ASSERT_TRUE(memory);
  auto empty = VirtioNet::open(*memory, "net0", {.tap = "", .mac = kMac});
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("net0"), std::string::npos) << empty.error().message;
  auto too_long = VirtioNet::open(*memory, "net0", {.tap = "a-very-long-tap-name", .mac = kMac});
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("a-very-long-tap-name"), std::string::npos);
  auto multicast = VirtioNet::open(*memory, "net0", {.tap = "tap0", .mac = {0x03, 0, 0, 0, 0, 1}});
  ASSERT_FALSE(multicast);
  EXPECT_NE(multicast.error().message.find("multicast"), std::string::npos);
}

class VirtioNetDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GODWIT_ENTER_TEST_NETNS(netns_);
    memory_ = test::make_guest_memory(kMiB);
    ASSERT_TRUE(memory_);
    auto net = VirtioNet::open(*memory_, "net0", {.tap = kTap, .mac = kMac});
    ASSERT_TRUE(net) << net.error().message;
    net_ = std::move(*net);
    queues_.reserve(2);
    queues_.emplace_back(*memory_, "net0 rx", kNetQueueSize);
    queues_.emplace_back(*memory_, "net0 tx", kNetQueueSize);
  }
  void TearDown() override {
    net_.reset();
    netns_.leave();
  }
  std::vector<uint8_t> config(uint64_t offset, size_t len) {
    std::vector<uint8_t> bytes(len, 0xaa);
    net_->read_config(offset, bytes);
    return bytes;
  }
  std::string property(const std::string& name) {
    for (const auto& [key, value] : net_->properties()) {
      if (key == name) return value;
    }
    return "<none>";
  }

  test::ScopedNetns netns_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<VirtioNet> net_;
  std::vector<Queue> queues_;
  CountingInterrupt irq_;
};

// R5: identity, features and queues as the driver sees them.
TEST_F(VirtioNetDeviceTest, IdentityFeaturesAndQueues) {
  EXPECT_EQ(net_->device_id(), kDeviceIdNet);
  EXPECT_EQ(net_->name(), "net0");
  EXPECT_EQ(net_->offered_features(), kNetFeatureMac | kNetFeatureStatus | kNetFeatureMrgRxbuf);
  EXPECT_EQ(net_->queue_max_sizes(), (std::vector<uint16_t>{256, 256}));
  ASSERT_EQ(net_->event_fds().size(), 1u);
  EXPECT_GE(net_->event_fds()[0], 0);
}

// R5: config space is mac[6], status (LINK_UP), max_virtqueue_pairs = 1,
// then zeros; partial and offset reads see the same bytes; writes are ignored.
TEST_F(VirtioNetDeviceTest, ConfigSpaceLayout) {
  EXPECT_EQ(config(0, 12),
            (std::vector<uint8_t>{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 1, 0, 1, 0, 0, 0}));
  EXPECT_EQ(config(3, 2), (std::vector<uint8_t>{0xab, 0xcd}));
  EXPECT_EQ(config(6, 2), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(config(kNetConfigSize, 4), (std::vector<uint8_t>{0, 0, 0, 0})) << "no mtu field";
  EXPECT_EQ(config(~0ull - 1, 4), (std::vector<uint8_t>{0, 0, 0, 0})) << "offset wrap";
  const uint8_t junk[] = {1, 2, 3, 4, 5, 6};
  net_->write_config(0, junk);
  EXPECT_EQ(config(0, 6), (std::vector<uint8_t>(kMac.begin(), kMac.end())));
}

// R5: properties and counters as GET /vm shows them.
TEST_F(VirtioNetDeviceTest, PropertiesAndCounters) {
  EXPECT_EQ(property("tap"), kTap);
  EXPECT_EQ(property("mac"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(property("link"), "up");
  std::vector<std::string> names;
  for (const auto& [key, value] : net_->counters()) {
    names.push_back(key);
    EXPECT_EQ(value, 0u) << key;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"rx_frames", "rx_bytes", "rx_dropped", "tx_frames",
                                             "tx_bytes", "tx_errors"}));
}

// R5: link changes flip the status bit; a change on an active device raises
// a config-change interrupt (once per change), an inactive one raises none.
TEST_F(VirtioNetDeviceTest, LinkStatusSignalsConfigChangeWhenActive) {
  net_->set_link_up(false);
  EXPECT_EQ(irq_.config, 0);
  EXPECT_EQ(config(6, 2), (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(property("link"), "down");

  ASSERT_TRUE(net_->activate(kFeatureVersion1 | kNetFeatureStatus, queues_, irq_).has_value());
  net_->set_link_up(true);
  EXPECT_EQ(irq_.config, 1);
  EXPECT_EQ(config(6, 2), (std::vector<uint8_t>{1, 0}));
  net_->set_link_up(true);
  EXPECT_EQ(irq_.config, 1) << "no change, no interrupt";
  net_->set_link_up(false);
  EXPECT_EQ(irq_.config, 2);
  EXPECT_FALSE(net_->link_up());

  net_->reset();
  net_->set_link_up(true);
  EXPECT_EQ(irq_.config, 2) << "signalled after reset";
  EXPECT_EQ(irq_.used, 0);
}

// R5: activate wants exactly two queues; notifications before activation
// and for unknown queues are harmless.
TEST_F(VirtioNetDeviceTest, ActivateChecksQueuesAndIdleCallsAreHarmless) {
  EXPECT_TRUE(net_->process_queue(kNetRxQueue).has_value());
  EXPECT_TRUE(net_->process_queue(kNetTxQueue).has_value());
  EXPECT_TRUE(net_->process_event(net_->event_fds()[0]).has_value());
  auto one = net_->activate(kFeatureVersion1, std::span(queues_).first(1), irq_);
  ASSERT_FALSE(one);
  EXPECT_NE(one.error().message.find("net0"), std::string::npos);
  ASSERT_TRUE(net_->activate(kFeatureVersion1, queues_, irq_).has_value());
  EXPECT_TRUE(net_->process_queue(7).has_value());
  EXPECT_TRUE(net_->process_queue(kNetTxQueue).has_value()) << "queue not ready: nothing to do";
}

// R5: state carries MAC, link status and the held frame (none here) in the
// documented version-2 layout; restore also takes version 1 (8 bytes) and
// refuses anything else.
TEST_F(VirtioNetDeviceTest, StateRoundTripAndLayout) {
  net_->set_link_up(false);
  DeviceState saved = net_->state().value();
  EXPECT_EQ(saved.device_id, kDeviceIdNet);
  EXPECT_EQ(saved.data,
            (std::vector<uint8_t>{2, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0}));

  DeviceState v1{kDeviceIdNet, {1, 0x52, 0x54, 0x00, 0x01, 0x02, 0x03, 1}};
  ASSERT_TRUE(net_->restore(v1).has_value());
  EXPECT_EQ(property("mac"), "52:54:00:01:02:03");
  EXPECT_TRUE(net_->link_up());
  EXPECT_EQ(net_->state().value().data,
            (std::vector<uint8_t>{2, 0x52, 0x54, 0x00, 0x01, 0x02, 0x03, 1, 0, 0, 0, 0}));
  ASSERT_TRUE(net_->restore(saved).has_value());
  EXPECT_EQ(net_->state().value(), saved);

  std::vector<uint8_t> too_short_frame = saved.data;  // a 12-byte "frame" is only a header
  too_short_frame[8] = 12;
  too_short_frame.resize(too_short_frame.size() + 12);
  std::vector<uint8_t> length_mismatch = saved.data;
  length_mismatch[8] = 20;
  length_mismatch.resize(length_mismatch.size() + 19);
  for (DeviceState bad :
       {DeviceState{2, saved.data}, DeviceState{kDeviceIdNet, {}},
        DeviceState{kDeviceIdNet, {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        DeviceState{kDeviceIdNet, {1, 0, 0, 0, 0, 0, 0, 2}},
        DeviceState{kDeviceIdNet, {1, 0x52, 0x54, 0, 0, 0, 0, 1, 0}},
        DeviceState{kDeviceIdNet, {2, 0x52, 0x54, 0, 0, 0, 0, 1, 0, 0}},
        DeviceState{kDeviceIdNet, too_short_frame}, DeviceState{kDeviceIdNet, length_mismatch}}) {
    auto r = net_->restore(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("net0"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(net_->state().value(), saved) << "a refused restore changed the state";
}

// R5: an all-zero MAC in the options means the default 52:54:00:12:34:56.
TEST_F(VirtioNetDeviceTest, ZeroMacMeansDefault) {
  net_.reset();  // detach so the same tap can be opened again
  auto net = VirtioNet::open(*memory_, "net1", {.tap = kTap, .mac = {}});
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_EQ((*net)->mac(), kDefaultMac);
  EXPECT_EQ(format_mac((*net)->mac()), "52:54:00:12:34:56");
}

// R5: a second device cannot attach to a tap another device holds; the
// error names the tap.
TEST_F(VirtioNetDeviceTest, SecondAttachToBusyTapFails) {
  auto second = VirtioNet::open(*memory_, "net1", {.tap = kTap, .mac = kMac});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find(kTap), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("TUNSETIFF"), std::string::npos);
}

}  // namespace
}  // namespace godwit::virtio
