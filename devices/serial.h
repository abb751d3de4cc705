// 8250/16550A UART (COM1): register-level emulation with the interrupt line
// and the output sink injected, so the device is pure logic. vCPU threads
// access registers through the Bus; an input thread calls enqueue_input().
//
// Registers (offset from the base port, DLAB = LCR bit 7):
//   0  read RBR (DLAB=0) / write THR (DLAB=0) / DLL (DLAB=1)
//   1  IER (DLAB=0) / DLM (DLAB=1)
//   2  read IIR (FIFO bits 7:6 when enabled) / write FCR
//   3  LCR   4  MCR (bit 4 = loopback)   5  LSR   6  MSR   7  SCR
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "devices/bus.h"
#include "devices/irq_line.h"
#include "devices/serial_sink.h"

namespace godwit {

/// Everything a snapshot needs to recreate a Serial (vm-superio style).
/// DR in line_status is derived from rx_fifo; THRE and TEMT are always set
/// because output leaves the UART the moment it is written.
struct SerialState {
  uint8_t divisor_low = 0x0c;      ///< DLL (115200 / 12 = 9600 baud)
  uint8_t divisor_high = 0;        ///< DLM
  uint8_t interrupt_enable = 0;    ///< IER (low 4 bits)
  uint8_t fifo_control = 0;        ///< FCR as last written (enable + trigger bits)
  uint8_t line_control = 0x03;     ///< LCR (8N1)
  uint8_t modem_control = 0x08;    ///< MCR (OUT2)
  uint8_t line_status = 0x60;      ///< LSR (THRE | TEMT, plus OE when overrun)
  uint8_t modem_status = 0xb0;     ///< MSR outside loopback (DCD | DSR | CTS)
  uint8_t scratch = 0;             ///< SCR
  bool thr_empty_pending = false;  ///< THRE interrupt raised and not yet acknowledged
  std::vector<uint8_t> rx_fifo;    ///< received bytes not yet read by the guest

  friend bool operator==(const SerialState&, const SerialState&) = default;
};

/// The 16550A UART.
class Serial : public BusDevice {
 public:
  /// Bytes the receive FIFO holds before enqueue_input() pushes back.
  static constexpr size_t kInputCapacity = 4096;
  /// Width of the UART's port range.
  static constexpr uint64_t kPortCount = 8;

  /// `irq` (may be null) is driven level-triggered; `sink` (may be null:
  /// output dropped) receives every byte the guest transmits.
  Serial(std::shared_ptr<IrqLine> irq, std::shared_ptr<SerialSink> sink);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// Queues host input for the guest and raises the RX interrupt if enabled.
  /// Returns the number of bytes accepted (fewer when the FIFO is full; the
  /// caller retries later). Bytes are discarded in loopback mode, where the
  /// real chip disconnects its input pin.
  size_t enqueue_input(std::span<const uint8_t> bytes);
  /// Free space in the receive FIFO.
  [[nodiscard]] size_t input_space() const;

  /// A copy of the device state.
  [[nodiscard]] SerialState state() const;
  /// Replaces the device state and re-drives the interrupt line to match it.
  void restore(const SerialState& state);

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  void transmit(uint8_t byte);
  [[nodiscard]] uint8_t modem_status_now() const;
  /// IIR without FIFO bits: 0x01 when nothing is pending.
  [[nodiscard]] uint8_t pending_interrupt() const;
  void update_irq(bool force = false);

  mutable std::mutex mutex_;
  std::shared_ptr<IrqLine> irq_;
  std::shared_ptr<SerialSink> sink_;
  SerialState s_;
  std::deque<uint8_t> rx_;  ///< the live receive FIFO (s_.rx_fifo is unused while running)
  bool irq_level_ = false;
};

}  // namespace godwit
