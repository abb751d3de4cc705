// 16550A UART register logic. Interrupt sources, highest priority first:
// receiver line status (overrun), received data available, THR empty, modem
// status. The line is level-triggered and high while any enabled source is
// pending. As in QEMU, MCR.OUT2 does not gate the line.
#include "devices/serial.h"

#include <algorithm>

namespace godwit {
namespace {
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerLineStatus = 0x04;
constexpr uint8_t kIerModemStatus = 0x08;
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirFifoBits = 0xc0;
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
}  // namespace

Serial::Serial(std::shared_ptr<IrqLine> irq, std::shared_ptr<SerialSink> sink)
    : irq_(std::move(irq)), sink_(std::move(sink)) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) data[i] = read_register(offset + i);
  update_irq();
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) write_register(offset + i, data[i]);
  update_irq();
}

uint8_t Serial::read_register(uint64_t offset) {
  bool dlab = s_.line_control & kLcrDlab;
  switch (offset) {
    case 0: {
      if (dlab) return s_.divisor_low;
      if (rx_.empty()) return 0;
      uint8_t byte = rx_.front();
      rx_.pop_front();
      return byte;
    }
    case 1:
      return dlab ? s_.divisor_high : s_.interrupt_enable;
    case 2: {
      uint8_t iir = pending_interrupt();
      // Reading IIR acknowledges a THR-empty interrupt it reports.
      if (iir == kIirThrEmpty) s_.thr_empty_pending = false;
      return iir | ((s_.fifo_control & kFcrEnable) ? kIirFifoBits : 0);
    }
    case 3:
      return s_.line_control;
    case 4:
      return s_.modem_control;
    case 5: {
      uint8_t lsr = s_.line_status | kLsrThrEmpty | kLsrIdle | (rx_.empty() ? 0 : kLsrDataReady);
      s_.line_status &= ~kLsrOverrun;  // error bits clear on read
      return lsr;
    }
    case 6: {
      uint8_t msr = modem_status_now();
      s_.modem_status &= 0xf0;  // delta bits clear on read
      return msr;
    }
    case 7:
      return s_.scratch;
    default:
      return 0xff;
  }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
  bool dlab = s_.line_control & kLcrDlab;
  switch (offset) {
    case 0:
      if (dlab) {
        s_.divisor_low = value;
      } else {
        transmit(value);
      }
      break;
    case 1:
      if (dlab) {
        s_.divisor_high = value;
      } else {
        uint8_t before = s_.interrupt_enable;
        s_.interrupt_enable = value & 0x0f;
        // Enabling ETBEI while THR is empty (always, here) raises THRE at once,
        // as on the real chip; Linux's 8250 driver probes for this.
        if (!(before & kIerThrEmpty) && (value & kIerThrEmpty)) s_.thr_empty_pending = true;
      }
      break;
    case 2:
      if (value & kFcrClearRx) rx_.clear();
      s_.fifo_control = value & 0xc9;  // enable, DMA mode, trigger level
      break;
    case 3:
      s_.line_control = value;
      break;
    case 4:
      s_.modem_control = value & 0x1f;
      break;
    case 7:
      s_.scratch = value;
      break;
    default:  // LSR and MSR writes are factory-test only: ignored
      break;
  }
}

void Serial::transmit(uint8_t byte) {
  if (s_.modem_control & kMcrLoop) {
    if (rx_.size() < kInputCapacity) {
      rx_.push_back(byte);
    } else {
      s_.line_status |= kLsrOverrun;
    }
  } else if (sink_) {
    sink_->write(std::span(&byte, 1));
  }
  s_.thr_empty_pending = true;
}

uint8_t Serial::modem_status_now() const {
  if (!(s_.modem_control & kMcrLoop)) return s_.modem_status;
  // Loopback wires the modem outputs back to the inputs:
  // RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
  uint8_t mcr = s_.modem_control;
  uint8_t msr = s_.modem_status & 0x0f;
  if (mcr & 0x02) msr |= 0x10;
  if (mcr & 0x01) msr |= 0x20;
  if (mcr & 0x04) msr |= 0x40;
  if (mcr & 0x08) msr |= 0x80;
  return msr;
}

uint8_t Serial::pending_interrupt() const {
  uint8_t ier = s_.interrupt_enable;
  if ((ier & kIerLineStatus) && (s_.line_status & kLsrOverrun)) return kIirLineStatus;
  if ((ier & kIerRxData) && !rx_.empty()) return kIirRxData;
  if ((ier & kIerThrEmpty) && s_.thr_empty_pending) return kIirThrEmpty;
  if ((ier & kIerModemStatus) && (modem_status_now() & 0x0f)) return kIirModemStatus;
  return kIirNone;
}

void Serial::update_irq(bool force) {
  bool level = pending_interrupt() != kIirNone;
  if (level == irq_level_ && !force) return;
  irq_level_ = level;
  if (irq_) irq_->set_level(level);
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  if (s_.modem_control & kMcrLoop) return bytes.size();
  size_t n = std::min(bytes.size(), kInputCapacity - rx_.size());
  rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + n);
  update_irq();
  return n;
}

size_t Serial::input_space() const {
  std::lock_guard lock(mutex_);
  return kInputCapacity - rx_.size();
}

SerialState Serial::state() const {
  std::lock_guard lock(mutex_);
  SerialState out = s_;
  out.rx_fifo.assign(rx_.begin(), rx_.end());
  return out;
}

void Serial::restore(const SerialState& state) {
  std::lock_guard lock(mutex_);
  s_ = state;
  s_.line_status &= ~kLsrDataReady;  // derived from the FIFO
  size_t n = std::min(state.rx_fifo.size(), kInputCapacity);
  rx_.assign(state.rx_fifo.begin(), state.rx_fifo.begin() + n);
  s_.rx_fifo.clear();
  update_irq(/*force=*/true);
}

}  // namespace godwit
