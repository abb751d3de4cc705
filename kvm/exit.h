// The typed result of KVM_RUN. Payload spans borrow the vCPU's kvm_run page:
// they are valid until the next run() of that vCPU. Data written into IoIn or
// MmioRead spans is what the guest reads when run() is next called.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "kvm/uapi.h"

namespace godwit::kvm {

/// Guest `in`/`ins`: fill `data` (size * count bytes) before the next run().
struct IoIn {
  uint16_t port;
  uint8_t size;
  uint32_t count;
  std::span<uint8_t> data;
};
/// Guest `out`/`outs`: `data` holds size * count bytes.
struct IoOut {
  uint16_t port;
  uint8_t size;
  uint32_t count;
  std::span<const uint8_t> data;
};
/// Guest read of unbacked memory: fill `data` before the next run().
struct MmioRead {
  uint64_t addr;
  std::span<uint8_t> data;
};
/// Guest write to unbacked memory.
struct MmioWrite {
  uint64_t addr;
  std::span<const uint8_t> data;
};
/// The guest executed `hlt` (only without an in-kernel irqchip).
struct Hlt {};
/// Triple fault or similar: the VM must be reset or stopped.
struct Shutdown {};
/// KVM_EXIT_SYSTEM_EVENT (KVM_SYSTEM_EVENT_SHUTDOWN, _RESET, _CRASH, ...).
struct SystemEvent {
  uint32_t type;
  uint64_t data0;
};
/// VM entry failed; `reason` is hardware specific.
struct FailEntry {
  uint64_t reason;
  uint32_t cpu;
};
/// KVM could not handle the exit (e.g. emulation failure).
struct InternalError {
  uint32_t suberror;
  std::vector<uint64_t> data;
};
/// This vCPU's dirty ring is full: harvest and reset before running again.
struct DirtyRingFull {};
/// KVM_RUN returned early: EINTR/EAGAIN (signal kick, immediate_exit, SIPI
/// wake-up on PVM) or KVM_EXIT_INTR. Simply run again when wanted.
struct Interrupted {};
/// The guest can take an interrupt (after request_interrupt_window).
struct IrqWindowOpen {};
/// A debug exit (single step, breakpoint) at guest `pc`.
struct Debug {
  uint32_t exception = 0;
  uint64_t pc = 0;
};
/// An exit this layer does not decode (KVM_EXIT_* number).
struct Unknown {
  uint32_t reason;
};

/// One exit of KVM_RUN.
using VcpuExit =
    std::variant<IoIn, IoOut, MmioRead, MmioWrite, Hlt, Shutdown, SystemEvent, FailEntry,
                 InternalError, DirtyRingFull, Interrupted, IrqWindowOpen, Debug, Unknown>;

/// Decodes the exit recorded in `run` after a successful KVM_RUN.
[[nodiscard]] VcpuExit decode_exit(kvm_run* run);

/// One line for logs, e.g. "io out port 0x3f8 size 1 count 1 data 41".
[[nodiscard]] std::string describe(const VcpuExit& exit);

}  // namespace godwit::kvm
