// Bus: overlap rejection, offset-relative dispatch, unmapped accesses.
#include <gtest/gtest.h>

#include <vector>

#include "devices/bus.h"

namespace godwit {
namespace {

// Records every access and answers reads with the low byte of the offset.
class RecordingDevice : public BusDevice {
 public:
  struct Access {
    bool is_write;
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  void read(uint64_t offset, std::span<uint8_t> data) override {
    for (auto& b : data) b = static_cast<uint8_t>(offset);
    accesses.push_back({false, offset, {data.begin(), data.end()}});
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    accesses.push_back({true, offset, {data.begin(), data.end()}});
  }
  std::vector<Access> accesses;
};

TEST(Bus, RejectsOverlapsWithClearMessage) {
  Bus bus;
  auto a = std::make_shared<RecordingDevice>();
  ASSERT_TRUE(bus.insert(a, 0x3f8, 8, "serial"));
  auto r = bus.insert(a, 0x3fc, 8, "other");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "bus insert other at [0x3fc, 0x404): overlaps serial at [0x3f8, 0x400)");
  EXPECT_FALSE(bus.insert(a, 0x3f0, 9, "below"));  // last byte hits 0x3f8
  EXPECT_FALSE(bus.insert(a, 0x3f0, 0x100, "around"));
  EXPECT_FALSE(bus.insert(a, 0x100, 0, "empty"));
  EXPECT_TRUE(bus.insert(a, 0x3f0, 8, "adjacent-below"));
  EXPECT_TRUE(bus.insert(a, 0x400, 1, "adjacent-above"));
  EXPECT_EQ(bus.ranges().size(), 3u);
}

TEST(Bus, DispatchesWithOffsetRelativeToBase) {
  Bus bus;
  auto serial = std::make_shared<RecordingDevice>();
  auto exit = std::make_shared<RecordingDevice>();
  ASSERT_TRUE(bus.insert(serial, 0x3f8, 8, "serial"));
  ASSERT_TRUE(bus.insert(exit, 0x501, 1, "debug-exit"));

  const uint8_t byte[1] = {'A'};
  EXPECT_EQ(bus.write(0x3f8, byte), BusStatus::handled);
  uint8_t in[1] = {};
  EXPECT_EQ(bus.read(0x3fd, in), BusStatus::handled);
  EXPECT_EQ(in[0], 5);
  EXPECT_EQ(bus.write(0x501, byte), BusStatus::handled);

  ASSERT_EQ(serial->accesses.size(), 2u);
  EXPECT_TRUE(serial->accesses[0].is_write);
  EXPECT_EQ(serial->accesses[0].offset, 0u);
  EXPECT_EQ(serial->accesses[0].data, std::vector<uint8_t>{'A'});
  EXPECT_FALSE(serial->accesses[1].is_write);
  EXPECT_EQ(serial->accesses[1].offset, 5u);
  ASSERT_EQ(exit->accesses.size(), 1u);
  EXPECT_EQ(exit->accesses[0].offset, 0u);
}

TEST(Bus, UnmappedReadsReturnAllOnesAndReportNoDevice) {
  Bus bus;
  auto dev = std::make_shared<RecordingDevice>();
  ASSERT_TRUE(bus.insert(dev, 0xd0000000, 0x1000, "testdev"));
  uint8_t data[4] = {1, 2, 3, 4};
  EXPECT_EQ(bus.read(0xd0001000, data), BusStatus::no_device);
  EXPECT_EQ(data[0], 0xff);
  EXPECT_EQ(data[3], 0xff);
  EXPECT_EQ(bus.read(0xcfffffff, data), BusStatus::no_device);
  const uint8_t w[4] = {};
  EXPECT_EQ(bus.write(0x10, w), BusStatus::no_device);
  // An access that runs past the end of a device is not the device's.
  EXPECT_EQ(bus.read(0xd0000ffe, data), BusStatus::no_device);
  EXPECT_TRUE(dev->accesses.empty());
  EXPECT_EQ(bus.read(0xd0000ffc, data), BusStatus::handled);
}

}  // namespace
}  // namespace godwit
