// Minimal i8042 keyboard controller: enough for guests (and Linux) to reset
// the machine with command 0xFE. No keyboard, no data: status reads 0.
//
// Mapped as one PIO range of kPortCount ports starting at 0x60, so the data
// port is offset 0 and the status/command port is offset 4 (0x61, the
// speaker port, is handled by KVM's in-kernel PIT and never reaches us).
#pragma once

#include <functional>

#include "devices/bus.h"

namespace godwit {

/// The i8042 has no state worth saving; the struct keeps the device
/// interface uniform for snapshots.
struct I8042State {
  friend bool operator==(const I8042State&, const I8042State&) = default;
};

/// Keyboard controller that only implements the CPU reset command.
class I8042 : public BusDevice {
 public:
  /// Ports covered: 0x60 (data, offset 0) to 0x64 (command/status, offset 4).
  static constexpr uint64_t kPortCount = 5;
  /// Offset of the data port (0x60) inside the range.
  static constexpr uint64_t kDataOffset = 0;
  /// Offset of the status (read) / command (write) port (0x64).
  static constexpr uint64_t kCommandOffset = 4;
  /// The "pulse reset line" command.
  static constexpr uint8_t kResetCommand = 0xfe;

  /// `on_reset` is called (on the vCPU thread) when the guest asks for reset.
  explicit I8042(std::function<void()> on_reset);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// The (empty) device state.
  [[nodiscard]] I8042State state() const { return {}; }
  /// Restores the (empty) device state.
  void restore(const I8042State&) {}

 private:
  std::function<void()> on_reset_;
};

}  // namespace godwit
