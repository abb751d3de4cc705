// Split virtqueue (issue 3): chains, indirect tables, 16-bit index
// wrap-around, notification suppression in both directions, used-ring
// contents, every malformed-ring case (queue broken, VMM alive) and the rule
// that every device write into guest memory is marked in the VMM dirty bitmap.
// A tiny test driver builds descriptor tables and avail rings in a real 1 MiB
// GuestMemory, writing like a guest would (not marked dirty).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/queue.h"

namespace godwit::virtio {
namespace {

constexpr uint64_t kDescGpa = 0x1000;   // up to 256 descriptors
constexpr uint64_t kAvailGpa = 0x2000;  // up to 256 entries
constexpr uint64_t kUsedGpa = 0x3000;   // up to 256 entries
constexpr uint64_t kTableGpa = 0x8000;  // indirect tables
constexpr uint64_t kDataGpa = 0x10000;  // data buffers

/// Plays the driver: writes rings straight into host memory (a guest write,
/// invisible to the VMM dirty bitmap) and reads what the device published.
class TestDriver {
 public:
  TestDriver(GuestMemory& memory, uint16_t size) : memory_(memory), size_(size) {}

  void poke(uint64_t gpa, const void* data, size_t len) {
    std::memcpy(memory_.host_span(gpa, len).value().data(), data, len);
  }
  template <typename T>
  void poke_obj(uint64_t gpa, T v) {
    poke(gpa, &v, sizeof v);
  }
  template <typename T>
  T peek_obj(uint64_t gpa) {
    return memory_.read_obj<T>(gpa).value();
  }
  /// Descriptor `i` of the table at `table`.
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0,
            uint64_t table = kDescGpa) {
    poke_obj(table + 16ull * i, Descriptor{addr, len, flags, next});
  }
  /// Makes `head` available and publishes the new avail idx.
  void publish(uint16_t head) {
    poke_obj<uint16_t>(kAvailGpa + 4 + 2ull * (avail_idx_ % size_), head);
    set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
  }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    poke_obj<uint16_t>(kAvailGpa + 2, idx);
  }
  void set_avail_flags(uint16_t flags) { poke_obj<uint16_t>(kAvailGpa, flags); }
  void set_used_event(uint16_t idx) { poke_obj<uint16_t>(kAvailGpa + 4 + 2ull * size_, idx); }
  uint16_t used_idx() { return peek_obj<uint16_t>(kUsedGpa + 2); }
  uint16_t used_flags() { return peek_obj<uint16_t>(kUsedGpa); }
  uint16_t avail_event() { return peek_obj<uint16_t>(kUsedGpa + 4 + 8ull * size_); }
  std::pair<uint32_t, uint32_t> used_entry(uint16_t slot) {
    return {peek_obj<uint32_t>(kUsedGpa + 4 + 8ull * slot),
            peek_obj<uint32_t>(kUsedGpa + 8 + 8ull * slot)};
  }

 private:
  GuestMemory& memory_;
  uint16_t size_;
  uint16_t avail_idx_ = 0;
};

class VirtqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = GuestMemory::create({.size = kMiB, .backing = MemoryBacking::anonymous}).value();
  }

  /// A ready queue of `size` at the standard addresses, plus its driver.
  Queue make_queue(uint16_t size, uint64_t features = 0) {
    Queue q(*memory_, "test", 256);
    q.set_size(size);
    q.set_desc_table(kDescGpa);
    q.set_avail_ring(kAvailGpa);
    q.set_used_ring(kUsedGpa);
    q.set_features(features);
    EXPECT_TRUE(q.activate().has_value());
    driver_.emplace(*memory_, size);
    return q;
  }
  TestDriver& driver() { return *driver_; }

  /// Pops expecting a malformed-ring error containing `reason`, then checks
  /// the queue stays broken.
  void expect_broken(Queue& q, const std::string& reason) {
    auto r = q.pop();
    ASSERT_FALSE(r.has_value()) << "pop accepted a malformed ring";
    EXPECT_NE(r.error().message.find(reason), std::string::npos) << r.error().message;
    EXPECT_TRUE(q.broken());
    EXPECT_NE(q.broken_reason().find(reason), std::string::npos) << q.broken_reason();
    auto again = q.pop();
    ASSERT_FALSE(again.has_value());
    EXPECT_NE(again.error().message.find("broken"), std::string::npos);
  }

  std::unique_ptr<GuestMemory> memory_;
  std::optional<TestDriver> driver_;
};

TEST_F(VirtqueueTest, SingleDescriptorChain) {
  Queue q = make_queue(16);
  driver().desc(3, kDataGpa, 100, 0);
  driver().publish(3);
  auto chain = q.pop().value();
  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(chain->head, 3);
  EXPECT_EQ(chain->readable, (std::vector<GuestBuffer>{{kDataGpa, 100}}));
  EXPECT_TRUE(chain->writable.empty());
  EXPECT_EQ(chain->readable_bytes, 100u);
  EXPECT_FALSE(q.pop().value().has_value()) << "queue should be empty";
}

TEST_F(VirtqueueTest, MultiDescriptorChainReadAndWriteAcrossBoundaries) {
  Queue q = make_queue(16);
  const char request[] = "hello, virtio";  // 13 bytes + NUL split 5 / 9
  driver().poke(kDataGpa, request, 5);
  driver().poke(kDataGpa + 0x100, request + 5, 9);
  driver().desc(0, kDataGpa, 5, kDescFlagNext, 4);
  driver().desc(4, kDataGpa + 0x100, 9, kDescFlagNext, 7);
  driver().desc(7, kDataGpa + 0x200, 3, kDescFlagWrite | kDescFlagNext, 2);
  driver().desc(2, kDataGpa + 0x300, 8, kDescFlagWrite);
  driver().publish(0);
  auto chain = q.pop().value().value();
  EXPECT_EQ(chain.readable.size(), 2u);
  EXPECT_EQ(chain.writable,
            (std::vector<GuestBuffer>{{kDataGpa + 0x200, 3}, {kDataGpa + 0x300, 8}}));
  EXPECT_EQ(chain.descriptor_count, 4u);

  ChainReader reader(*memory_, chain);
  char got[14] = {};
  ASSERT_TRUE(reader.read(std::span(reinterpret_cast<uint8_t*>(got), 14)).has_value());
  EXPECT_STREQ(got, "hello, virtio");
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_FALSE(reader.read_obj<uint8_t>().has_value()) << "read past the readable part";

  ChainWriter writer(*memory_, chain);
  const uint8_t reply[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  ASSERT_TRUE(writer.write(reply).has_value());
  EXPECT_EQ(writer.written(), 11u);
  EXPECT_FALSE(writer.write_obj<uint8_t>(0).has_value()) << "write past the writable part";
  EXPECT_EQ(driver().peek_obj<uint8_t>(kDataGpa + 0x202), 3);
  EXPECT_EQ(driver().peek_obj<uint8_t>(kDataGpa + 0x300), 4);
  EXPECT_EQ(driver().peek_obj<uint8_t>(kDataGpa + 0x307), 11);
}

TEST_F(VirtqueueTest, IndirectTableAtHeadAndAfterDirectDescriptors) {
  Queue q = make_queue(16, kFeatureIndirectDesc);
  // WRITE on the INDIRECT descriptor itself must be ignored.
  driver().desc(1, kTableGpa, 3 * 16, kDescFlagIndirect | kDescFlagWrite);
  driver().desc(0, kDataGpa, 16, kDescFlagNext, 2, kTableGpa);
  driver().desc(2, kDataGpa + 0x100, 32, kDescFlagNext, 1, kTableGpa);
  driver().desc(1, kDataGpa + 0x200, 64, kDescFlagWrite, 0, kTableGpa);
  driver().publish(1);
  auto chain = q.pop().value().value();
  EXPECT_EQ(chain.head, 1);
  EXPECT_EQ(chain.readable, (std::vector<GuestBuffer>{{kDataGpa, 16}, {kDataGpa + 0x100, 32}}));
  EXPECT_EQ(chain.writable, (std::vector<GuestBuffer>{{kDataGpa + 0x200, 64}}));

  // A direct readable descriptor whose chain ends in an indirect table.
  driver().desc(5, kDataGpa + 0x400, 8, kDescFlagNext, 6);
  driver().desc(6, kTableGpa + 0x100, 16, kDescFlagIndirect);
  driver().desc(0, kDataGpa + 0x500, 4, kDescFlagWrite, 0, kTableGpa + 0x100);
  driver().publish(5);
  chain = q.pop().value().value();
  EXPECT_EQ(chain.readable, (std::vector<GuestBuffer>{{kDataGpa + 0x400, 8}}));
  EXPECT_EQ(chain.writable, (std::vector<GuestBuffer>{{kDataGpa + 0x500, 4}}));
}

TEST_F(VirtqueueTest, IndicesWrapAround65535) {
  Queue q = make_queue(8);
  QueueState s = q.state();
  s.last_avail_idx = s.next_used_idx = s.signalled_used_idx = 65533;
  ASSERT_TRUE(q.restore(s).has_value());
  driver().set_avail_idx(65533);
  for (uint16_t i = 0; i < 6; ++i) {
    driver().desc(i, kDataGpa + 0x100ull * i, 10 + i, kDescFlagWrite);
    driver().publish(i);
  }
  EXPECT_EQ(q.available().value(), 6);
  for (uint16_t i = 0; i < 6; ++i) {
    auto chain = q.pop().value();
    ASSERT_TRUE(chain.has_value()) << "pop " << i;
    EXPECT_EQ(chain->head, i);
    ASSERT_TRUE(q.add_used(chain->head, 100 + i).has_value());
  }
  EXPECT_FALSE(q.pop().value().has_value());
  EXPECT_EQ(q.state().last_avail_idx, 3);  // 65533 + 6 mod 2^16
  EXPECT_EQ(driver().used_idx(), 3);
  for (uint16_t i = 0; i < 6; ++i) {
    uint16_t slot = static_cast<uint16_t>(65533 + i) % 8;
    EXPECT_EQ(driver().used_entry(slot), (std::pair<uint32_t, uint32_t>{i, 100u + i}));
  }
}

TEST_F(VirtqueueTest, UsedRingEntriesAndIdx) {
  Queue q = make_queue(4);
  ASSERT_TRUE(q.add_used(2, 512).has_value());
  ASSERT_TRUE(q.add_used(0, 0).has_value());
  EXPECT_EQ(driver().used_idx(), 2);
  EXPECT_EQ(driver().used_entry(0), (std::pair<uint32_t, uint32_t>{2, 512}));
  EXPECT_EQ(driver().used_entry(1), (std::pair<uint32_t, uint32_t>{0, 0}));
  EXPECT_FALSE(q.add_used(4, 1).has_value()) << "head >= size";
  EXPECT_EQ(driver().used_idx(), 2);
}

static_assert(vring_need_event(0, 1, 0));
static_assert(!vring_need_event(5, 5, 4));
static_assert(vring_need_event(5, 6, 4));
static_assert(vring_need_event(65535, 1, 65534));  // crossing the wrap

TEST_F(VirtqueueTest, EventIdxSuppressesInterruptsUntilUsedEventIsCrossed) {
  Queue q = make_queue(16, kFeatureEventIdx);
  driver().set_used_event(2);  // "interrupt me when entry 2 (the third) is used"
  ASSERT_TRUE(q.add_used(0, 0).has_value());
  EXPECT_FALSE(q.needs_notification().value());
  ASSERT_TRUE(q.add_used(0, 0).has_value());
  EXPECT_FALSE(q.needs_notification().value());
  ASSERT_TRUE(q.add_used(0, 0).has_value());
  EXPECT_TRUE(q.needs_notification().value());
  EXPECT_FALSE(q.needs_notification().value()) << "nothing new since the last check";
  // NO_INTERRUPT is ignored once EVENT_IDX is negotiated.
  driver().set_avail_flags(kAvailFlagNoInterrupt);
  driver().set_used_event(3);
  ASSERT_TRUE(q.add_used(0, 0).has_value());
  ASSERT_TRUE(q.add_used(0, 0).has_value());  // batch 3 -> 5 crosses 3
  EXPECT_TRUE(q.needs_notification().value());
}

TEST_F(VirtqueueTest, EventIdxAcrossIndexWrap) {
  Queue q = make_queue(16, kFeatureEventIdx);
  QueueState s = q.state();
  s.next_used_idx = s.signalled_used_idx = 65534;
  ASSERT_TRUE(q.restore(s).has_value());
  driver().set_used_event(0);
  ASSERT_TRUE(q.add_used(0, 0).has_value());  // 65534 -> 65535: not yet
  EXPECT_FALSE(q.needs_notification().value());
  ASSERT_TRUE(q.add_used(0, 0).has_value());  // 65535 -> 0: still before entry 0 is used
  EXPECT_FALSE(q.needs_notification().value());
  ASSERT_TRUE(q.add_used(0, 0).has_value());  // 0 -> 1: crossed
  EXPECT_TRUE(q.needs_notification().value());
}

TEST_F(VirtqueueTest, NoInterruptFlagWithoutEventIdx) {
  Queue q = make_queue(16);
  EXPECT_FALSE(q.needs_notification().value()) << "nothing was added";
  ASSERT_TRUE(q.add_used(1, 1).has_value());
  EXPECT_TRUE(q.needs_notification().value());
  driver().set_avail_flags(kAvailFlagNoInterrupt);
  ASSERT_TRUE(q.add_used(1, 1).has_value());
  EXPECT_FALSE(q.needs_notification().value());
}

TEST_F(VirtqueueTest, DriverNotificationSuppression) {
  Queue q = make_queue(16, kFeatureEventIdx);
  driver().desc(0, kDataGpa, 1, 0);
  driver().publish(0);
  driver().publish(0);
  ASSERT_TRUE(q.pop().value().has_value());
  ASSERT_TRUE(q.set_avail_event().has_value());
  EXPECT_EQ(driver().avail_event(), 1) << "avail_event = last_avail_idx";
  ASSERT_TRUE(q.pop().value().has_value());
  ASSERT_TRUE(q.set_avail_event().has_value());
  EXPECT_EQ(driver().avail_event(), 2);

  Queue legacy = make_queue(16);
  EXPECT_FALSE(legacy.set_avail_event().has_value()) << "needs VIRTIO_F_EVENT_IDX";
  ASSERT_TRUE(legacy.set_no_notify(true).has_value());
  EXPECT_EQ(driver().used_flags(), kUsedFlagNoNotify);
  ASSERT_TRUE(legacy.set_no_notify(false).has_value());
  EXPECT_EQ(driver().used_flags(), 0);
}

TEST_F(VirtqueueTest, ActivateRejectsBadConfiguration) {
  Queue q(*memory_, "cfg", 256);
  auto try_config = [&](uint16_t size, uint64_t desc, uint64_t avail, uint64_t used) {
    q.reset();
    q.set_size(size);
    q.set_desc_table(desc);
    q.set_avail_ring(avail);
    q.set_used_ring(used);
    auto r = q.activate();
    return r ? std::string("ok") : r.error().message;
  };
  EXPECT_EQ(try_config(256, kDescGpa, kAvailGpa, kUsedGpa), "ok");
  EXPECT_NE(try_config(0, kDescGpa, kAvailGpa, kUsedGpa).find("power of two"), std::string::npos);
  EXPECT_NE(try_config(96, kDescGpa, kAvailGpa, kUsedGpa).find("power of two"), std::string::npos);
  EXPECT_NE(try_config(512, kDescGpa, kAvailGpa, kUsedGpa).find("power of two"), std::string::npos);
  EXPECT_NE(try_config(16, kDescGpa + 8, kAvailGpa, kUsedGpa).find("aligned"), std::string::npos);
  EXPECT_NE(try_config(16, kDescGpa, kAvailGpa + 1, kUsedGpa).find("aligned"), std::string::npos);
  EXPECT_NE(try_config(16, kDescGpa, kAvailGpa, kUsedGpa + 2).find("aligned"), std::string::npos);
  EXPECT_NE(try_config(16, kMiB - 16, kAvailGpa, kUsedGpa).find("outside guest RAM"),
            std::string::npos);
  EXPECT_NE(try_config(16, kDescGpa, kAvailGpa, UINT64_MAX - 3).find("outside guest RAM"),
            std::string::npos);
  EXPECT_FALSE(q.ready());
  EXPECT_FALSE(q.pop().has_value()) << "pop on a queue that is not ready";
}

TEST_F(VirtqueueTest, StateRoundTripContinuesWhereItStopped) {
  Queue q = make_queue(16, kFeatureEventIdx | kFeatureIndirectDesc);
  for (uint16_t i = 0; i < 3; ++i) {
    driver().desc(i, kDataGpa, 1, 0);
    driver().publish(i);
  }
  ASSERT_TRUE(q.pop().value().has_value());
  ASSERT_TRUE(q.add_used(0, 1).has_value());
  q.set_size(4);  // ignored while ready
  QueueState saved = q.state();
  EXPECT_EQ(saved.size, 16);

  Queue copy(*memory_, "copy", 256);
  ASSERT_TRUE(copy.restore(saved).has_value());
  EXPECT_EQ(copy.state(), saved);
  EXPECT_EQ(copy.pop().value().value().head, 1);
  QueueState bad = saved;
  bad.used_ring = kMiB;  // outside RAM
  EXPECT_FALSE(copy.restore(bad).has_value());
}

// ---- malformed rings: the queue breaks with a reason, the VMM survives ----

TEST_F(VirtqueueTest, DescriptorLoopIsBounded) {
  Queue q = make_queue(8);
  driver().desc(0, kDataGpa, 4, kDescFlagNext, 1);
  driver().desc(1, kDataGpa, 4, kDescFlagNext, 0);
  driver().publish(0);
  expect_broken(q, "loop");
}

TEST_F(VirtqueueTest, SelfLoopIsBounded) {
  Queue q = make_queue(8);
  driver().desc(2, kDataGpa, 4, kDescFlagNext, 2);
  driver().publish(2);
  expect_broken(q, "longer than its queue");
}

TEST_F(VirtqueueTest, LoopInsideIndirectTableIsBounded) {
  Queue q = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kTableGpa, 2 * 16, kDescFlagIndirect);
  driver().desc(0, kDataGpa, 4, kDescFlagNext, 1, kTableGpa);
  driver().desc(1, kDataGpa, 4, kDescFlagNext, 0, kTableGpa);
  driver().publish(0);
  expect_broken(q, "longer than its indirect table");
}

TEST_F(VirtqueueTest, BufferOutsideGuestRam) {
  Queue q = make_queue(8);
  driver().desc(0, kMiB - 8, 16, 0);
  driver().publish(0);
  expect_broken(q, "outside guest RAM");
}

TEST_F(VirtqueueTest, BufferWrappingTheAddressSpace) {
  Queue q = make_queue(8);
  driver().desc(0, UINT64_MAX - 7, 16, 0);
  driver().publish(0);
  expect_broken(q, "wraps around");
}

TEST_F(VirtqueueTest, AvailIdxJumpingAheadMoreThanQueueSize) {
  Queue q = make_queue(8);
  driver().set_avail_idx(9);
  expect_broken(q, "more than queue size");
}

TEST_F(VirtqueueTest, HeadIndexOutOfRange) {
  Queue q = make_queue(8);
  driver().publish(8);
  expect_broken(q, "head index 8 >= queue size 8");
}

TEST_F(VirtqueueTest, NextIndexOutOfRange) {
  Queue q = make_queue(8);
  driver().desc(0, kDataGpa, 4, kDescFlagNext, 200);
  driver().publish(0);
  expect_broken(q, "next 200 >= queue size 8");
}

TEST_F(VirtqueueTest, NestedIndirect) {
  Queue q = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kTableGpa, 16, kDescFlagIndirect);
  driver().desc(0, kTableGpa + 0x100, 16, kDescFlagIndirect, 0, kTableGpa);
  driver().publish(0);
  expect_broken(q, "nested INDIRECT");
}

TEST_F(VirtqueueTest, IndirectTableLengthNotMultipleOf16) {
  Queue q = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kTableGpa, 24, kDescFlagIndirect);
  driver().publish(0);
  expect_broken(q, "not a non-zero multiple of 16");
}

TEST_F(VirtqueueTest, IndirectTableLengthZero) {
  Queue q = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kTableGpa, 0, kDescFlagIndirect);
  driver().publish(0);
  expect_broken(q, "not a non-zero multiple of 16");
}

TEST_F(VirtqueueTest, IndirectTableTooLargeOrOutsideRam) {
  Queue big = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kTableGpa, 16 * (kMaxIndirectDescriptors + 1), kDescFlagIndirect);
  driver().publish(0);
  expect_broken(big, "exceeds 32768");

  Queue outside = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kMiB - 16, 32, kDescFlagIndirect);
  driver().publish(0);
  expect_broken(outside, "indirect table addr");
}

TEST_F(VirtqueueTest, IndirectWithoutNegotiationOrWithNext) {
  Queue plain = make_queue(8);
  driver().desc(0, kTableGpa, 16, kDescFlagIndirect);
  driver().publish(0);
  expect_broken(plain, "not negotiated");

  Queue with_next = make_queue(8, kFeatureIndirectDesc);
  driver().desc(0, kTableGpa, 16, kDescFlagIndirect | kDescFlagNext, 1);
  driver().publish(0);
  expect_broken(with_next, "both INDIRECT and NEXT");
}

TEST_F(VirtqueueTest, ReadableAfterWritableIsRejected) {
  Queue q = make_queue(8);
  driver().desc(0, kDataGpa, 4, kDescFlagWrite | kDescFlagNext, 1);
  driver().desc(1, kDataGpa + 0x100, 4, 0);
  driver().publish(0);
  expect_broken(q, "follows a device-writable");
}

TEST_F(VirtqueueTest, TotalLengthOverflowing32Bits) {
  // 8193 overlapping 512 KiB buffers in an indirect table: 4 GiB + 512 KiB.
  Queue q = make_queue(8, kFeatureIndirectDesc);
  constexpr uint16_t kCount = 8193;
  constexpr uint64_t kBigTable = 0x20000;  // 8193 * 16 bytes, up to 0x40010
  driver().desc(0, kBigTable, kCount * 16, kDescFlagIndirect);
  for (uint16_t i = 0; i < kCount; ++i)
    driver().desc(i, 0x80000, 0x80000, i + 1 < kCount ? kDescFlagNext : 0, i + 1, kBigTable);
  driver().publish(0);
  expect_broken(q, "overflows 32 bits");
}

// ---- dirty marking (R: every device write into guest memory is marked) ----

TEST_F(VirtqueueTest, AddUsedAndChainWriterMarkExactlyTheWrittenPages) {
  constexpr uint64_t kUsedAcrossPages = 0x5ffc;  // idx on page 5, ring[0] on page 6
  Queue q(*memory_, "dirty", 16);
  q.set_size(16);
  q.set_desc_table(kDescGpa);
  q.set_avail_ring(kAvailGpa);
  q.set_used_ring(kUsedAcrossPages);
  q.set_features(kFeatureEventIdx);
  ASSERT_TRUE(q.activate().has_value());
  TestDriver d(*memory_, 16);
  d.desc(0, 0x20000, 10, kDescFlagNext, 1);                   // readable, page 0x20
  d.desc(1, 0x30000, 10, kDescFlagWrite | kDescFlagNext, 2);  // page 0x30
  d.desc(2, 0x40ff8, 16, kDescFlagWrite | kDescFlagNext, 3);  // pages 0x40, 0x41
  d.desc(3, 0x50000, 0x2000, kDescFlagWrite);                 // pages 0x50, 0x51
  d.publish(0);

  DirtyBitmap& dirty = memory_->vmm_dirty(0);
  dirty.clear();
  auto chain = q.pop().value().value();
  EXPECT_EQ(dirty.count(), 0u) << "pop must not write guest memory";

  ChainWriter writer(*memory_, chain);
  std::vector<uint8_t> data(20, 0xab);  // 10 bytes on page 0x30, 10 across 0x40/0x41
  ASSERT_TRUE(writer.write(data).has_value());
  std::span<uint8_t> span = writer.next_span(100).value();  // 6 bytes left in desc 2
  ASSERT_EQ(span.size(), 6u);
  ASSERT_TRUE(writer.commit(6).has_value());
  span = writer.next_span(4).value();  // zero-copy into page 0x50
  ASSERT_EQ(span.size(), 4u);
  std::memset(span.data(), 0xcd, 4);
  ASSERT_TRUE(writer.commit(4).has_value());
  EXPECT_EQ(writer.written(), 30u);
  EXPECT_EQ(d.peek_obj<uint8_t>(0x50003), 0xcd);

  std::vector<uint64_t> expected_pages = {0x30, 0x40, 0x41, 0x50};
  for (uint64_t page : expected_pages) EXPECT_TRUE(dirty.test(page)) << "page " << page;
  EXPECT_EQ(dirty.count(), expected_pages.size()) << "only the written pages";

  dirty.clear();
  ASSERT_TRUE(q.add_used(chain.head, writer.written()).has_value());
  EXPECT_TRUE(dirty.test(5)) << "used idx page";
  EXPECT_TRUE(dirty.test(6)) << "used entry page";
  EXPECT_EQ(dirty.count(), 2u);

  dirty.clear();
  ASSERT_TRUE(q.set_avail_event().has_value());  // 0x5ffc + 4 + 8 * 16 = 0x6080
  EXPECT_TRUE(dirty.test(6));
  EXPECT_EQ(dirty.count(), 1u);
}

}  // namespace
}  // namespace godwit::virtio
