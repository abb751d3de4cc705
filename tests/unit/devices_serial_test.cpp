// 16550A UART: transmit, line status, divisor latch, THRE and RX interrupts,
// loopback, FIFO control and state save/restore.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "devices/serial.h"

namespace godwit {
namespace {

constexpr uint64_t kThr = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;

class StringSink : public SerialSink {
 public:
  void write(std::span<const uint8_t> bytes) override { out.append(bytes.begin(), bytes.end()); }
  std::string out;
};

class RecordingIrq : public IrqLine {
 public:
  void set_level(bool high) override {
    level = high;
    changes.push_back(high);
  }
  bool level = false;
  std::vector<bool> changes;
};

struct SerialTest : ::testing::Test {
  std::shared_ptr<StringSink> sink = std::make_shared<StringSink>();
  std::shared_ptr<RecordingIrq> irq = std::make_shared<RecordingIrq>();
  Serial uart{irq, sink};

  uint8_t in(uint64_t reg) {
    uint8_t v = 0;
    uart.read(reg, std::span(&v, 1));
    return v;
  }
  void out(uint64_t reg, uint8_t v) { uart.write(reg, std::span(&v, 1)); }
  size_t feed(const std::string& s) {
    return uart.enqueue_input(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
};

TEST_F(SerialTest, ThrWriteReachesSink) {
  out(kThr, 'h');
  out(kThr, 'i');
  EXPECT_EQ(sink->out, "hi");
  EXPECT_TRUE(irq->changes.empty());  // no interrupt enabled
}

TEST_F(SerialTest, LineStatusShowsTransmitterEmptyAndDataReady) {
  EXPECT_EQ(in(kLsr), 0x60);  // THRE | TEMT, no data
  feed("x");
  EXPECT_EQ(in(kLsr), 0x61);
  EXPECT_EQ(in(kThr), 'x');
  EXPECT_EQ(in(kLsr), 0x60);
}

TEST_F(SerialTest, DivisorLatchIsBehindDlab) {
  out(kLcr, 0x83);  // DLAB + 8N1
  out(0, 0x01);     // DLL: 115200 baud
  out(1, 0x00);     // DLM
  EXPECT_EQ(in(0), 0x01);
  EXPECT_EQ(in(1), 0x00);
  EXPECT_TRUE(sink->out.empty());  // DLL write is not a transmit
  out(kLcr, 0x03);
  EXPECT_EQ(in(kIer), 0x00);  // IER untouched by the DLM write
  auto st = uart.state();
  EXPECT_EQ(st.divisor_low, 0x01);
  EXPECT_EQ(st.line_control, 0x03);
}

TEST_F(SerialTest, ThrEmptyInterruptRaisedByWriteAndClearedByIirRead) {
  out(kIer, 0x02);  // ETBEI: THR is empty, so the interrupt fires at once
  EXPECT_TRUE(irq->level);
  EXPECT_EQ(in(kIir), 0x02);
  EXPECT_FALSE(irq->level);
  EXPECT_EQ(in(kIir), 0x01);  // acknowledged: nothing pending

  out(kThr, 'a');
  EXPECT_TRUE(irq->level);
  EXPECT_EQ(in(kIir)&0x0f, 0x02);
  EXPECT_FALSE(irq->level);
  EXPECT_EQ(irq->changes, (std::vector<bool>{true, false, true, false}));
}

TEST_F(SerialTest, RxInterruptFollowsReceivedData) {
  out(kIer, 0x01);  // ERBFI
  EXPECT_FALSE(irq->level);
  EXPECT_EQ(feed("ok"), 2u);
  EXPECT_TRUE(irq->level);
  EXPECT_EQ(in(kIir), 0x04);
  EXPECT_EQ(in(kThr), 'o');
  EXPECT_TRUE(irq->level);  // still one byte left
  EXPECT_EQ(in(kThr), 'k');
  EXPECT_FALSE(irq->level);
  EXPECT_EQ(in(kIir), 0x01);
}

TEST_F(SerialTest, RxHasPriorityOverThrEmpty) {
  out(kIer, 0x03);
  feed("z");
  EXPECT_EQ(in(kIir), 0x04);
  EXPECT_EQ(in(kThr), 'z');
  EXPECT_EQ(in(kIir), 0x02);  // THRE still pending underneath
  EXPECT_EQ(in(kIir), 0x01);
}

TEST_F(SerialTest, FifoControlSetsIirBitsAndClearsReceiveFifo) {
  out(kFcr, 0x01);
  EXPECT_EQ(in(kIir), 0xc1);
  feed("abc");
  out(kFcr, 0x03);  // keep enabled, clear RX
  EXPECT_EQ(in(kLsr)&0x01, 0);
}

TEST_F(SerialTest, LoopbackReturnsTransmittedBytesAndModemLines) {
  out(kMcr, 0x10 | 0x0b);  // LOOP + OUT2 + RTS + DTR
  out(kThr, 'L');
  EXPECT_TRUE(sink->out.empty());
  EXPECT_EQ(in(kLsr)&0x01, 0x01);
  EXPECT_EQ(in(kThr), 'L');
  EXPECT_EQ(in(kMsr), 0xb0);  // DCD(OUT2) DSR(DTR) CTS(RTS)
  out(kMcr, 0x10 | 0x04);     // LOOP + OUT1 only
  EXPECT_EQ(in(kMsr), 0x40);  // RI
  EXPECT_EQ(feed("ignored"), 7u);
  EXPECT_EQ(in(kLsr)&0x01, 0);  // host input is disconnected in loopback
  out(kMcr, 0x08);
  EXPECT_EQ(in(kMsr), 0xb0);
}

TEST_F(SerialTest, ScratchRegisterHoldsValue) {
  out(kScr, 0x5a);
  EXPECT_EQ(in(kScr), 0x5a);
}

TEST_F(SerialTest, InputBeyondCapacityIsPushedBack) {
  std::string big(Serial::kInputCapacity + 10, 'q');
  EXPECT_EQ(feed(big), Serial::kInputCapacity);
  EXPECT_EQ(uart.input_space(), 0u);
  in(kThr);
  EXPECT_EQ(uart.input_space(), 1u);
}

TEST_F(SerialTest, StateRoundTripMidFifo) {
  out(kLcr, 0x80);
  out(0, 0x03);
  out(kLcr, 0x03);
  out(kFcr, 0x01);
  out(kIer, 0x01);
  out(kScr, 0x77);
  feed("abcdef");
  EXPECT_EQ(in(kThr), 'a');
  EXPECT_EQ(in(kThr), 'b');
  SerialState saved = uart.state();
  EXPECT_EQ(saved.rx_fifo, (std::vector<uint8_t>{'c', 'd', 'e', 'f'}));

  auto irq2 = std::make_shared<RecordingIrq>();
  auto sink2 = std::make_shared<StringSink>();
  Serial copy(irq2, sink2);
  copy.restore(saved);
  EXPECT_EQ(copy.state(), saved);
  EXPECT_TRUE(irq2->level);  // restore re-drives the line: data is pending
  std::string rest;
  for (int i = 0; i < 4; ++i) {
    uint8_t v = 0;
    copy.read(kThr, std::span(&v, 1));
    rest += static_cast<char>(v);
  }
  EXPECT_EQ(rest, "cdef");
  EXPECT_FALSE(irq2->level);
  uint8_t v = 0;
  copy.read(kScr, std::span(&v, 1));
  EXPECT_EQ(v, 0x77);
}

}  // namespace
}  // namespace godwit
