// The legacy platform devices of a machine (UART, i8042, debug-exit port,
// testdev page) on their PIO and MMIO buses, wired to the VM's interrupt
// lines and to the console backend chosen with --serial.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "base/result.h"
#include "devices/bus.h"
#include "devices/serial.h"
#include "vmm/config.h"

namespace godwit {

class ConsoleTail;
class ConsoleBackend;
class Testdev;

/// Saved state of the platform devices (the others are stateless).
struct PlatformDevicesState {
  SerialState serial;
};

/// The buses and the legacy devices on them.
class PlatformDevices {
 public:
  /// How devices reach the rest of the VMM.
  struct Hooks {
    std::function<void(uint32_t gsi, bool level)> irq_line;    ///< KVM_IRQ_LINE
    std::function<void(int status, const std::string&)> stop;  ///< guest-requested stop
  };

  /// Builds the devices and the console backend for `config`.
  [[nodiscard]] static Result<std::unique_ptr<PlatformDevices>> create(const VmConfig& config,
                                                                       Hooks hooks);
  ~PlatformDevices();

  void pio_in(uint16_t port, std::span<uint8_t> data);
  void pio_out(uint16_t port, std::span<const uint8_t> data);
  void mmio_read(uint64_t addr, std::span<uint8_t> data);
  void mmio_write(uint64_t addr, std::span<const uint8_t> data);

  [[nodiscard]] PlatformDevicesState save_state() const;
  [[nodiscard]] Result<void> restore_state(const PlatformDevicesState& state);
  /// The devices as the API lists them (name, bus, range).
  [[nodiscard]] nlohmann::json info() const;
  /// The MMIO bus, for devices created elsewhere (virtio-mmio transports).
  [[nodiscard]] Bus& mmio_bus() { return mmio_; }
  /// The last bytes the guest printed (UART and testdev console).
  [[nodiscard]] std::string console_tail() const;

 private:
  PlatformDevices() = default;
  void note_unmapped(const char* bus, uint64_t addr);

  Hooks hooks_;
  Bus pio_;
  Bus mmio_;
  std::shared_ptr<Serial> serial_;
  std::shared_ptr<ConsoleTail> tail_;
  std::unique_ptr<ConsoleBackend> backend_;
};

}  // namespace godwit
