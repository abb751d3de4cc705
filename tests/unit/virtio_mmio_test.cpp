// virtio-mmio transport (issue 3): a test driver performs the whole init
// sequence over the registers (magic / version / device id, feature
// negotiation incl. refusing FEATURES_OK without VERSION_1, queue setup,
// DRIVER_OK), runs a virtio-rng request end to end (used ring, random bytes,
// interrupt, InterruptStatus / ACK, VMM dirty bitmap), resets through Status
// 0, survives a malformed ring (NEEDS_RESET + config interrupt), ignores bad
// accesses, and round-trips its state. Rings live in a real 1 MiB GuestMemory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/rng.h"

namespace godwit::virtio {
namespace {

constexpr uint64_t kDescGpa = 0x1000;
constexpr uint64_t kAvailGpa = 0x2000;
constexpr uint64_t kUsedGpa = 0x3000;
constexpr uint64_t kDataGpa = 0x10000;
constexpr uint16_t kSize = 16;

/// Plays the guest driver: register accesses through the BusDevice
/// interface, ring writes straight into host memory (not marked dirty).
class MmioDriver {
 public:
  MmioDriver(MmioTransport& t, GuestMemory& m) : t_(t), m_(m) {}

  uint32_t rd(uint64_t off) {
    uint32_t v = 0;
    t_.read(off, std::span(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void wr(uint64_t off, uint32_t v) {
    t_.write(off, std::span(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  uint64_t device_features() {
    wr(mmio::kDeviceFeaturesSel, 1);
    uint64_t hi = rd(mmio::kDeviceFeatures);
    wr(mmio::kDeviceFeaturesSel, 0);
    return (hi << 32) | rd(mmio::kDeviceFeatures);
  }
  /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK; true if the device kept FEATURES_OK.
  bool negotiate(uint64_t features) {
    wr(mmio::kStatus, status::kAcknowledge);
    wr(mmio::kStatus, status::kAcknowledge | status::kDriver);
    wr(mmio::kDriverFeaturesSel, 0);
    wr(mmio::kDriverFeatures, static_cast<uint32_t>(features));
    wr(mmio::kDriverFeaturesSel, 1);
    wr(mmio::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    wr(mmio::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    return rd(mmio::kStatus) & status::kFeaturesOk;
  }
  void setup_queue(uint16_t size = kSize, uint64_t desc = kDescGpa) {
    wr(mmio::kQueueSel, 0);
    wr(mmio::kQueueNum, size);
    wr(mmio::kQueueDescLow, static_cast<uint32_t>(desc));
    wr(mmio::kQueueDescHigh, static_cast<uint32_t>(desc >> 32));
    wr(mmio::kQueueDriverLow, kAvailGpa);
    wr(mmio::kQueueDriverHigh, 0);
    wr(mmio::kQueueDeviceLow, kUsedGpa);
    wr(mmio::kQueueDeviceHigh, 0);
    wr(mmio::kQueueReady, 1);
  }
  void driver_ok() { wr(mmio::kStatus, rd(mmio::kStatus) | status::kDriverOk); }
  /// The full sequence with VERSION_1 only.
  void init() {
    ASSERT_TRUE(negotiate(kFeatureVersion1));
    setup_queue();
    ASSERT_EQ(rd(mmio::kQueueReady), 1u);
    driver_ok();
    ASSERT_EQ(rd(mmio::kStatus),
              status::kAcknowledge | status::kDriver | status::kFeaturesOk | status::kDriverOk);
  }

  template <typename T>
  void poke(uint64_t gpa, T v) {
    std::memcpy(m_.host_span(gpa, sizeof v).value().data(), &v, sizeof v);
  }
  template <typename T>
  T peek(uint64_t gpa) {
    return m_.read_obj<T>(gpa).value();
  }
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    poke(kDescGpa + 16ull * i, Descriptor{addr, len, flags, next});
  }
  void publish(uint16_t head) {
    poke<uint16_t>(kAvailGpa + 4 + 2ull * (avail_idx_ % kSize), head);
    poke<uint16_t>(kAvailGpa + 2, ++avail_idx_);
  }
  void set_avail_idx(uint16_t idx) { poke<uint16_t>(kAvailGpa + 2, avail_idx_ = idx); }
  uint16_t used_idx() { return peek<uint16_t>(kUsedGpa + 2); }
  std::pair<uint32_t, uint32_t> used_entry(uint16_t slot) {
    return {peek<uint32_t>(kUsedGpa + 4 + 8ull * slot), peek<uint32_t>(kUsedGpa + 8 + 8ull * slot)};
  }
  void clear_rings() {
    std::memset(m_.host_span(kDescGpa, 0x3000).value().data(), 0, 0x3000);
    avail_idx_ = 0;
  }

 private:
  MmioTransport& t_;
  GuestMemory& m_;
  uint16_t avail_idx_ = 0;
};

/// Records the levels an IrqLine was driven to.
class RecordingIrqLine : public IrqLine {
 public:
  void set_level(bool high) override { levels.push_back(high); }
  std::vector<bool> levels;
};

class VirtioMmioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = GuestMemory::create({.size = kMiB, .backing = MemoryBacking::anonymous}).value();
    transport_ = make_transport();
    driver_ = std::make_unique<MmioDriver>(*transport_, *memory_);
  }
  std::unique_ptr<MmioTransport> make_transport() {
    return std::make_unique<MmioTransport>(*memory_, std::make_unique<VirtioRng>(*memory_, "rng0"),
                                           [this] { ++interrupts_; });
  }
  bool all_zero(uint64_t gpa, size_t len) {
    auto s = memory_->host_span(gpa, len).value();
    return std::all_of(s.begin(), s.end(), [](uint8_t b) { return b == 0; });
  }

  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<MmioTransport> transport_;
  std::unique_ptr<MmioDriver> driver_;
  int interrupts_ = 0;
};

// R: discovery registers of a virtio 1.x (Version 2) entropy device.
TEST_F(VirtioMmioTest, IdentifiesAsModernRngDevice) {
  MmioDriver& d = *driver_;
  EXPECT_EQ(d.rd(mmio::kMagicValue), 0x74726976u);
  EXPECT_EQ(d.rd(mmio::kVersion), 2u);
  EXPECT_EQ(d.rd(mmio::kDeviceId), 4u);
  EXPECT_EQ(d.rd(mmio::kVendorId), mmio::kVendor);
  uint64_t features = d.device_features();
  EXPECT_TRUE(features & kFeatureVersion1);
  EXPECT_TRUE(features & kFeatureEventIdx);
  EXPECT_TRUE(features & kFeatureIndirectDesc);
  d.wr(mmio::kQueueSel, 0);
  EXPECT_EQ(d.rd(mmio::kQueueNumMax), kRngQueueSize);
  d.wr(mmio::kQueueSel, 1);
  EXPECT_EQ(d.rd(mmio::kQueueNumMax), 0u) << "rng has one queue";
  EXPECT_EQ(d.rd(mmio::kStatus), 0u);
  EXPECT_EQ(d.rd(mmio::kShmLenLow), 0xffffffffu) << "no shared memory regions";
}

// R: FEATURES_OK requires VERSION_1 and only offered features.
TEST_F(VirtioMmioTest, FeaturesOkRefusedWithoutVersion1OrWithUnofferedFeatures) {
  MmioDriver& d = *driver_;
  EXPECT_FALSE(d.negotiate(0));
  EXPECT_EQ(d.rd(mmio::kStatus), status::kAcknowledge | status::kDriver);
  d.driver_ok();  // out of order: ignored
  EXPECT_FALSE(d.rd(mmio::kStatus) & status::kDriverOk);

  d.wr(mmio::kStatus, 0);
  EXPECT_FALSE(d.negotiate(kFeatureVersion1 | (1ull << 5))) << "bit 5 was not offered";

  d.wr(mmio::kStatus, 0);
  EXPECT_TRUE(d.negotiate(kFeatureVersion1 | kFeatureEventIdx));
}

// R: a whole rng request over the registers: used ring, random bytes,
// interrupt, InterruptStatus / ACK, and the dirty bitmap.
TEST_F(VirtioMmioTest, RngRequestEndToEnd) {
  MmioDriver& d = *driver_;
  d.init();
  DirtyBitmap& dirty = memory_->vmm_dirty(0);
  dirty.clear();
  // Two writable buffers on two pages (the second crosses into a third).
  d.desc(2, kDataGpa + 0x10, 64, kDescFlagWrite | kDescFlagNext, 5);
  d.desc(5, kDataGpa + 0x1f00, 0x200, kDescFlagWrite);
  d.publish(2);
  EXPECT_EQ(interrupts_, 0);
  d.wr(mmio::kQueueNotify, 0);

  EXPECT_EQ(d.used_idx(), 1);
  EXPECT_EQ(d.used_entry(0), (std::pair<uint32_t, uint32_t>{2, 64 + 0x200}));
  EXPECT_FALSE(all_zero(kDataGpa + 0x10, 64));
  EXPECT_FALSE(all_zero(kDataGpa + 0x1f00, 0x200));
  EXPECT_TRUE(all_zero(kDataGpa, 0x10)) << "bytes before the buffer untouched";
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), mmio::kInterruptUsedBuffer);
  d.wr(mmio::kInterruptAck, mmio::kInterruptUsedBuffer);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), 0u);

  for (uint64_t page : {kDataGpa / kPageSize, kDataGpa / kPageSize + 1, kDataGpa / kPageSize + 2,
                        kUsedGpa / kPageSize}) {
    EXPECT_TRUE(dirty.test(page)) << "page " << page << " written but not marked";
  }
  EXPECT_FALSE(dirty.test(kDataGpa / kPageSize + 3));
  EXPECT_FALSE(dirty.test(kDescGpa / kPageSize)) << "the device never writes descriptors";
  EXPECT_TRUE(transport_->needs_reset_reason().empty());
}

// R: an edge-triggered GSI is pulsed once per signal.
TEST_F(VirtioMmioTest, PulseIrqLineRaisesThenLowers) {
  RecordingIrqLine line;
  auto trigger = pulse_irq_line(line);
  trigger();
  EXPECT_EQ(line.levels, (std::vector<bool>{true, false}));
}

// R: writing 0 to Status resets the device; it can be brought up again.
TEST_F(VirtioMmioTest, WritingZeroStatusResets) {
  MmioDriver& d = *driver_;
  d.init();
  d.desc(0, kDataGpa, 32, kDescFlagWrite);
  d.publish(0);
  d.wr(mmio::kQueueNotify, 0);
  ASSERT_EQ(d.used_idx(), 1);

  d.wr(mmio::kStatus, 0);
  EXPECT_EQ(d.rd(mmio::kStatus), 0u);
  EXPECT_EQ(d.rd(mmio::kQueueReady), 0u);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), 0u);
  d.publish(0);
  d.wr(mmio::kQueueNotify, 0);
  EXPECT_EQ(d.used_idx(), 1) << "a reset device must not process requests";

  d.clear_rings();
  d.init();
  d.desc(0, kDataGpa, 32, kDescFlagWrite);
  d.publish(0);
  transport_->notify(0);  // the ioeventfd path
  EXPECT_EQ(d.used_idx(), 1) << "indices restart at 0 after reset";
}

// R: a malformed ring puts the device into NEEDS_RESET with a config-change
// interrupt; the VMM stays alive and later notifications are ignored.
TEST_F(VirtioMmioTest, MalformedRingNeedsReset) {
  MmioDriver& d = *driver_;
  d.init();
  uint32_t generation = d.rd(mmio::kConfigGeneration);
  d.desc(0, kDataGpa, 32, kDescFlagWrite | kDescFlagNext, 1);
  d.desc(1, kDataGpa + 32, 32, kDescFlagWrite | kDescFlagNext, 0);  // loop
  d.publish(0);
  d.wr(mmio::kQueueNotify, 0);

  EXPECT_TRUE(d.rd(mmio::kStatus) & status::kNeedsReset);
  EXPECT_TRUE(d.rd(mmio::kInterruptStatus) & mmio::kInterruptConfigChange);
  EXPECT_EQ(interrupts_, 1);
  EXPECT_NE(d.rd(mmio::kConfigGeneration), generation);
  EXPECT_NE(transport_->needs_reset_reason().find("rng0 q0"), std::string::npos)
      << transport_->needs_reset_reason();
  EXPECT_EQ(d.used_idx(), 0);

  d.wr(mmio::kQueueNotify, 0);
  EXPECT_EQ(interrupts_, 1) << "notifications are ignored in NEEDS_RESET";
  d.wr(mmio::kStatus, d.rd(mmio::kStatus) & ~status::kNeedsReset);
  EXPECT_TRUE(d.rd(mmio::kStatus) & status::kNeedsReset) << "the driver cannot clear it";

  d.wr(mmio::kStatus, 0);
  d.clear_rings();
  d.init();
  d.desc(0, kDataGpa, 32, kDescFlagWrite);
  d.publish(0);
  d.wr(mmio::kQueueNotify, 0);
  EXPECT_EQ(d.used_idx(), 1) << "the device works again after a reset";
}

// R: a queue configuration that fails validation (misaligned descriptor
// table) is refused with NEEDS_RESET instead of being used.
TEST_F(VirtioMmioTest, InvalidQueueConfigurationNeedsReset) {
  MmioDriver& d = *driver_;
  ASSERT_TRUE(d.negotiate(kFeatureVersion1));
  d.setup_queue(kSize, kDescGpa + 8);
  EXPECT_EQ(d.rd(mmio::kQueueReady), 0u);
  EXPECT_TRUE(d.rd(mmio::kStatus) & status::kNeedsReset);
  EXPECT_EQ(interrupts_, 0) << "no config interrupt before DRIVER_OK";
}

// R: wrong-width, unaligned and unknown accesses are ignored.
TEST_F(VirtioMmioTest, BadAccessesAreIgnored) {
  MmioDriver& d = *driver_;
  uint8_t two[2] = {0xaa, 0xaa};
  transport_->read(mmio::kMagicValue, two);
  EXPECT_EQ(two[0], 0);
  EXPECT_EQ(two[1], 0);
  uint8_t one = status::kAcknowledge;
  transport_->write(mmio::kStatus, std::span(&one, 1));
  EXPECT_EQ(d.rd(mmio::kStatus), 0u) << "1-byte Status write must be ignored";
  d.wr(mmio::kStatus + 1, status::kAcknowledge);  // unaligned
  EXPECT_EQ(d.rd(mmio::kStatus), 0u);
  EXPECT_EQ(d.rd(0x0f0), 0u);
  d.wr(0x0f0, 1);
  uint8_t three[3] = {};
  transport_->write(mmio::kConfig, std::span<const uint8_t>(three, 3));
  EXPECT_EQ(d.rd(mmio::kConfig), 0u) << "rng has no config space";
  d.wr(mmio::kQueueNotify, 0);  // before DRIVER_OK: ignored, no crash
  EXPECT_EQ(interrupts_, 0);
}

// R: snapshot hooks: state() of a running transport restores into a fresh
// one, which then continues with the same rings.
TEST_F(VirtioMmioTest, StateRestoreRoundTrip) {
  MmioDriver& d = *driver_;
  ASSERT_TRUE(d.negotiate(kFeatureVersion1 | kFeatureEventIdx));
  d.setup_queue();
  d.driver_ok();
  d.poke<uint16_t>(kAvailGpa + 4 + 2 * kSize, 0);  // used_event: interrupt at the next entry
  d.desc(0, kDataGpa, 32, kDescFlagWrite);
  d.publish(0);
  d.wr(mmio::kQueueNotify, 0);
  ASSERT_EQ(d.used_idx(), 1);
  ASSERT_EQ(interrupts_, 1);

  MmioTransportState saved = transport_->state().value();
  EXPECT_TRUE(saved.device_active);
  EXPECT_EQ(saved.queues.size(), 1u);
  EXPECT_EQ(saved.queues[0].next_used_idx, 1);
  EXPECT_TRUE(saved.queues[0].event_idx);
  EXPECT_EQ(saved.interrupt_status, mmio::kInterruptUsedBuffer);

  auto fresh = make_transport();
  ASSERT_TRUE(fresh->restore(saved).has_value());
  EXPECT_EQ(interrupts_, 2) << "a pending interrupt is raised again after restore";
  EXPECT_EQ(fresh->state().value(), saved);

  MmioDriver d2(*fresh, *memory_);
  d2.poke<uint16_t>(kAvailGpa + 2, 1);  // d2's own avail idx starts at the saved point
  d2.set_avail_idx(1);
  d2.poke<uint16_t>(kAvailGpa + 4 + 2 * kSize, 1);
  d2.desc(3, kDataGpa + 0x100, 16, kDescFlagWrite);
  d2.poke<uint16_t>(kAvailGpa + 4 + 2 * 1, 3);
  d2.set_avail_idx(2);
  d2.wr(mmio::kQueueNotify, 0);
  EXPECT_EQ(d2.used_idx(), 2);
  EXPECT_EQ(d2.used_entry(1), (std::pair<uint32_t, uint32_t>{3, 16}));
  EXPECT_EQ(interrupts_, 3);

  MmioTransportState wrong = saved;
  wrong.device.device_id = 2;
  EXPECT_FALSE(make_transport()->restore(wrong).has_value());
  wrong = saved;
  wrong.queues[0].desc_table = kDescGpa + 8;  // re-validated
  EXPECT_FALSE(make_transport()->restore(wrong).has_value());
}

}  // namespace
}  // namespace godwit::virtio
