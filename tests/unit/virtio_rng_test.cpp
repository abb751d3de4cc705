// virtio-rng device alone (issue 3, item 6): driven directly through the
// VirtioDevice interface with a real Queue in a 1 MiB GuestMemory and a
// counting VirtioInterrupt: buffers filled from getrandom and marked dirty,
// the per-request cap, notification suppression, readable-only chains, a
// broken ring reported as an error, and the (empty) snapshot state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "devices/virtio/rng.h"
#include "unit/virtio_test_driver.h"

namespace godwit::virtio {
namespace {

constexpr uint64_t kDescGpa = 0x1000;
constexpr uint64_t kAvailGpa = 0x2000;
constexpr uint64_t kUsedGpa = 0x3000;
constexpr uint64_t kDataGpa = 0x10000;
constexpr uint16_t kSize = 8;

using test::CountingInterrupt;

class VirtioRngTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = GuestMemory::create({.size = kMiB, .backing = MemoryBacking::anonymous}).value();
    rng_ = std::make_unique<VirtioRng>(*memory_, "rng0");
    queues_.emplace_back(*memory_, "rng0 q0", kRngQueueSize);
    Queue& q = queues_[0];
    q.set_size(kSize);
    q.set_desc_table(kDescGpa);
    q.set_avail_ring(kAvailGpa);
    q.set_used_ring(kUsedGpa);
    ASSERT_TRUE(q.activate().has_value());
    ASSERT_TRUE(rng_->activate(kFeatureVersion1, queues_, irq_).has_value());
  }
  template <typename T>
  void poke(uint64_t gpa, T v) {
    std::memcpy(memory_->host_span(gpa, sizeof v).value().data(), &v, sizeof v);
  }
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    poke(kDescGpa + 16ull * i, Descriptor{addr, len, flags, next});
  }
  void publish(uint16_t head) {
    poke<uint16_t>(kAvailGpa + 4 + 2ull * (avail_idx_ % kSize), head);
    poke<uint16_t>(kAvailGpa + 2, ++avail_idx_);
  }
  uint16_t used_idx() { return memory_->read_obj<uint16_t>(kUsedGpa + 2).value(); }
  uint32_t used_len(uint16_t slot) {
    return memory_->read_obj<uint32_t>(kUsedGpa + 8 + 8ull * slot).value();
  }
  bool all_zero(uint64_t gpa, size_t len) {
    auto s = memory_->host_span(gpa, len).value();
    return std::all_of(s.begin(), s.end(), [](uint8_t b) { return b == 0; });
  }

  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<VirtioRng> rng_;
  std::vector<Queue> queues_;
  CountingInterrupt irq_;
  uint16_t avail_idx_ = 0;
};

// R6: every chain gets random bytes, written through the dirty-marking accessor.
TEST_F(VirtioRngTest, FillsEveryAvailableChainAndMarksPagesDirty) {
  DirtyBitmap& dirty = memory_->vmm_dirty(0);
  dirty.clear();
  desc(0, kDataGpa, 256, kDescFlagWrite);
  desc(1, kDataGpa + 0x3000, 128, kDescFlagWrite);
  publish(0);
  publish(1);
  ASSERT_TRUE(rng_->process_queue(0).has_value());
  EXPECT_EQ(used_idx(), 2);
  EXPECT_EQ(used_len(0), 256u);
  EXPECT_EQ(used_len(1), 128u);
  EXPECT_FALSE(all_zero(kDataGpa, 256));
  EXPECT_FALSE(all_zero(kDataGpa + 0x3000, 128));
  EXPECT_NE(std::memcmp(memory_->host_span(kDataGpa, 128).value().data(),
                        memory_->host_span(kDataGpa + 0x3000, 128).value().data(), 128),
            0)
      << "two requests got the same bytes";
  EXPECT_TRUE(dirty.test(kDataGpa / kPageSize));
  EXPECT_TRUE(dirty.test(kDataGpa / kPageSize + 3));
  EXPECT_FALSE(dirty.test(kDataGpa / kPageSize + 1));
  EXPECT_EQ(irq_.used, 1) << "one interrupt for the batch";
  EXPECT_EQ(rng_->bytes_served(), 384u);
}

// R6: one request is capped so a huge chain cannot stall the device.
TEST_F(VirtioRngTest, CapsBytesPerRequest) {
  desc(0, kDataGpa, 2 * kRngMaxBytesPerRequest, kDescFlagWrite);
  publish(0);
  ASSERT_TRUE(rng_->process_queue(0).has_value());
  EXPECT_EQ(used_len(0), kRngMaxBytesPerRequest);
  EXPECT_TRUE(all_zero(kDataGpa + kRngMaxBytesPerRequest, 4096)) << "wrote past the cap";
}

// R6: a chain without writable buffers completes with length 0; an empty
// notification raises nothing.
TEST_F(VirtioRngTest, ReadableOnlyChainAndEmptyNotification) {
  ASSERT_TRUE(rng_->process_queue(0).has_value());
  EXPECT_EQ(irq_.used, 0);
  desc(0, kDataGpa, 64, 0);
  publish(0);
  ASSERT_TRUE(rng_->process_queue(0).has_value());
  EXPECT_EQ(used_idx(), 1);
  EXPECT_EQ(used_len(0), 0u);
  EXPECT_TRUE(all_zero(kDataGpa, 64));
}

// R6: VIRTQ_AVAIL_F_NO_INTERRUPT suppresses the interrupt, not the work.
TEST_F(VirtioRngTest, HonoursNoInterrupt) {
  poke<uint16_t>(kAvailGpa, kAvailFlagNoInterrupt);
  desc(0, kDataGpa, 16, kDescFlagWrite);
  publish(0);
  ASSERT_TRUE(rng_->process_queue(0).has_value());
  EXPECT_EQ(used_idx(), 1);
  EXPECT_EQ(irq_.used, 0);
}

// R8: a broken ring is an error for the transport; chains done before it
// still complete and interrupt.
TEST_F(VirtioRngTest, BrokenRingIsReportedAfterCompletingEarlierChains) {
  desc(0, kDataGpa, 16, kDescFlagWrite);
  publish(0);
  publish(kSize + 1);  // head out of range
  auto r = rng_->process_queue(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("rng0 q0"), std::string::npos) << r.error().message;
  EXPECT_TRUE(queues_[0].broken());
  EXPECT_EQ(used_idx(), 1);
  EXPECT_EQ(irq_.used, 1);
}

// R: after reset the device ignores notifications; state is empty and checked.
TEST_F(VirtioRngTest, ResetAndState) {
  rng_->reset();
  desc(0, kDataGpa, 16, kDescFlagWrite);
  publish(0);
  ASSERT_TRUE(rng_->process_queue(0).has_value());
  EXPECT_EQ(used_idx(), 0);

  DeviceState s = rng_->state().value();
  EXPECT_EQ(s.device_id, kDeviceIdRng);
  EXPECT_TRUE(s.data.empty());
  EXPECT_TRUE(rng_->restore(s).has_value());
  EXPECT_FALSE(rng_->restore(DeviceState{2, {}}).has_value());
  EXPECT_FALSE(rng_->restore(DeviceState{kDeviceIdRng, {1}}).has_value());
}

}  // namespace
}  // namespace godwit::virtio
