// An interrupt output of a device, injected so devices are pure logic. The
// VMM implements it with KVM_IRQ_LINE (level) on the device's GSI; tests
// record the level.
#pragma once

namespace godwit {

/// A level-triggered interrupt line driven by one device.
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  /// Drives the line high (true) or low (false). Called only on changes.
  virtual void set_level(bool high) = 0;
};

}  // namespace godwit
