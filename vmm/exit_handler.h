// The vCPU exit handler: a pure function from one typed KVM exit to an
// action, with device access injected, so tests feed it synthetic exits.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kvm/exit.h"

namespace godwit {

/// Where PIO and MMIO accesses go (the machine forwards them to its buses).
class ExitDispatch {
 public:
  virtual ~ExitDispatch() = default;
  /// A guest IN of data.size() bytes from `port`: fill `data`.
  virtual void pio_in(uint16_t port, std::span<uint8_t> data) = 0;
  /// A guest OUT of `data` to `port`.
  virtual void pio_out(uint16_t port, std::span<const uint8_t> data) = 0;
  /// A guest MMIO read at `addr`: fill `data`.
  virtual void mmio_read(uint64_t addr, std::span<uint8_t> data) = 0;
  /// A guest MMIO write of `data` at `addr`.
  virtual void mmio_write(uint64_t addr, std::span<const uint8_t> data) = 0;
};

/// What the vCPU loop does after an exit.
enum class ExitAction {
  reenter,      ///< handled: run the vCPU again
  interrupted,  ///< KVM_RUN was interrupted: check pause/stop, then run again
  fatal,        ///< the guest cannot continue: stop the VM with `reason`
  shutdown,     ///< the guest asked to power off or reset: stop the VM normally
};

/// The action and, for fatal/shutdown, a reason for the log and the API.
struct ExitOutcome {
  ExitAction action = ExitAction::reenter;
  std::string reason;
};

/// Handles one exit. String I/O (`rep ins/outs`) is split into `count`
/// accesses of `size` bytes, as the guest performed them.
[[nodiscard]] ExitOutcome handle_exit(const kvm::VcpuExit& exit, ExitDispatch& dispatch);

}  // namespace godwit
