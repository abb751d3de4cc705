// The debug-exit port (0x501): a guest writes its exit status there and the
// VMM stops the VM, exiting with that status. Used by test guests.
#pragma once

#include <functional>

#include "devices/bus.h"

namespace godwit {

/// No state to save; kept for a uniform snapshot interface.
struct DebugExitState {
  friend bool operator==(const DebugExitState&, const DebugExitState&) = default;
};

/// Debug-exit port: any write of value v calls on_exit(v & 0xff) (the low
/// byte of wider writes). Reads return 0.
class DebugExit : public BusDevice {
 public:
  /// Width of the port range.
  static constexpr uint64_t kPortCount = 1;

  /// `on_exit` runs on the vCPU thread that wrote the port.
  explicit DebugExit(std::function<void(int)> on_exit);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// The (empty) device state.
  [[nodiscard]] DebugExitState state() const { return {}; }
  /// Restores the (empty) device state.
  void restore(const DebugExitState&) {}

 private:
  std::function<void(int)> on_exit_;
};

}  // namespace godwit
