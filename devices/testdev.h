// The testdev MMIO page (docs/guest-abi.md): a ring-3-reachable console byte
// register, an exit register and read-only platform facts. Exists because
// port I/O from ring 3 faults on PVM hosts while MMIO exits at any privilege.
//
//   offset  access  meaning
//   0x00    write   console byte (low 8 bits) → the serial sink
//   0x04    write   exit: on_exit(value & 0xff)
//   0x08    read    number of vCPUs
//   0x0C    read    RAM size in MiB
//   0x10    read    magic 0x54574447 ("GDWT")
//   other   read 0, writes ignored (logged at debug level)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "devices/bus.h"
#include "devices/serial_sink.h"

namespace godwit {

/// Fixed facts the testdev reports; set at creation, not guest-modifiable.
struct TestdevConfig {
  uint32_t vcpu_count = 1;  ///< value of register 0x08
  uint32_t ram_mib = 0;     ///< value of register 0x0C
};

/// The testdev has no guest-modifiable state; kept for a uniform interface.
struct TestdevState {
  friend bool operator==(const TestdevState&, const TestdevState&) = default;
};

/// The testdev MMIO page.
class Testdev : public BusDevice {
 public:
  /// Size of the MMIO page.
  static constexpr uint64_t kSize = 0x1000;
  /// Console byte register (write).
  static constexpr uint64_t kConsoleOffset = 0x00;
  /// Exit register (write).
  static constexpr uint64_t kExitOffset = 0x04;
  /// vCPU count register (read).
  static constexpr uint64_t kVcpuCountOffset = 0x08;
  /// RAM size in MiB register (read).
  static constexpr uint64_t kRamMibOffset = 0x0c;
  /// Magic register (read).
  static constexpr uint64_t kMagicOffset = 0x10;
  /// Value of the magic register ("GDWT" little-endian).
  static constexpr uint32_t kMagic = 0x54574447;

  /// `sink` gets console bytes (may be null); `on_exit` runs on the vCPU thread.
  Testdev(TestdevConfig config, std::shared_ptr<SerialSink> sink, std::function<void(int)> on_exit);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// The (empty) device state.
  [[nodiscard]] TestdevState state() const { return {}; }
  /// Restores the (empty) device state.
  void restore(const TestdevState&) {}

 private:
  [[nodiscard]] uint32_t register_value(uint64_t reg) const;

  TestdevConfig config_;
  std::shared_ptr<SerialSink> sink_;
  std::function<void(int)> on_exit_;
};

}  // namespace godwit
