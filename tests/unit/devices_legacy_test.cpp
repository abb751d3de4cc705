// i8042 reset, debug-exit port and testdev registers.
#include <gtest/gtest.h>

#include <string>

#include "devices/debug_exit.h"
#include "devices/i8042.h"
#include "devices/testdev.h"

namespace godwit {
namespace {

class StringSink : public SerialSink {
 public:
  void write(std::span<const uint8_t> bytes) override { out.append(bytes.begin(), bytes.end()); }
  std::string out;
};

uint32_t read32(BusDevice& dev, uint64_t offset) {
  uint8_t b[4] = {};
  dev.read(offset, b);
  return b[0] | b[1] << 8 | b[2] << 16 | uint32_t{b[3]} << 24;
}
void write32(BusDevice& dev, uint64_t offset, uint32_t v) {
  const uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  dev.write(offset, b);
}

TEST(I8042, ResetCommandCallsCallback) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  uint8_t v = 0xaa;
  kbd.read(I8042::kCommandOffset, std::span(&v, 1));
  EXPECT_EQ(v, 0);  // status: no data
  v = 0xaa;
  kbd.read(I8042::kDataOffset, std::span(&v, 1));
  EXPECT_EQ(v, 0);
  uint8_t other = 0xad;  // disable keyboard: ignored
  kbd.write(I8042::kCommandOffset, std::span(&other, 1));
  uint8_t reset = 0xfe;
  kbd.write(I8042::kDataOffset, std::span(&reset, 1));  // data port: not a command
  EXPECT_EQ(resets, 0);
  kbd.write(I8042::kCommandOffset, std::span(&reset, 1));
  EXPECT_EQ(resets, 1);
}

TEST(DebugExit, WrittenByteIsExitCode) {
  int code = -1;
  DebugExit port([&](int c) { code = c; });
  uint8_t v = 42;
  port.write(0, std::span(&v, 1));
  EXPECT_EQ(code, 42);
  const uint8_t wide[2] = {0xfe, 0x01};  // low byte of a wider write
  port.write(0, wide);
  EXPECT_EQ(code, 0xfe);
}

TEST(Testdev, ReportsPlatformFacts) {
  Testdev dev({.vcpu_count = 4, .ram_mib = 512}, nullptr, nullptr);
  EXPECT_EQ(read32(dev, Testdev::kVcpuCountOffset), 4u);
  EXPECT_EQ(read32(dev, Testdev::kRamMibOffset), 512u);
  EXPECT_EQ(read32(dev, Testdev::kMagicOffset), 0x54574447u);
  EXPECT_EQ(read32(dev, 0x14), 0u);
  EXPECT_EQ(read32(dev, 0x800), 0u);
  uint8_t byte = 0;
  dev.read(Testdev::kMagicOffset, std::span(&byte, 1));
  EXPECT_EQ(byte, 'G');
}

TEST(Testdev, ConsoleAndExitRegisters) {
  auto sink = std::make_shared<StringSink>();
  int code = -1;
  Testdev dev({.vcpu_count = 1, .ram_mib = 64}, sink, [&](int c) { code = c; });
  write32(dev, Testdev::kConsoleOffset, 0x1234'0000 | 'O');
  write32(dev, Testdev::kConsoleOffset, 'K');
  EXPECT_EQ(sink->out, "OK");
  write32(dev, 0x20, 7);  // ignored
  EXPECT_EQ(code, -1);
  write32(dev, Testdev::kExitOffset, 0x1'03);
  EXPECT_EQ(code, 3);
  EXPECT_EQ(sink->out, "OK");
}

}  // namespace
}  // namespace godwit
