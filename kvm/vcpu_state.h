// The full architectural state of one vCPU as one value type, with save and
// restore in an order known to work (also on PVM hosts).
//
// Save only a vCPU that is outside KVM_RUN and has no half-finished exit: after
// an IoIn/IoOut/MmioRead/MmioWrite exit, first run once with immediate_exit set
// (returns Interrupted) so KVM completes the instruction, then save.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/uapi.h"

namespace godwit::kvm {

class System;
class Vcpu;

/// Everything KVM exposes about one x86 vCPU. Needs KVM_CAP_SREGS2 and an
/// in-kernel irqchip (for the LAPIC).
struct VcpuState {
  kvm_regs regs{};
  kvm_sregs2 sregs2{};
  std::vector<uint8_t> xsave;    ///< KVM_GET_XSAVE(2) bytes; empty without KVM_CAP_XSAVE
  std::optional<kvm_fpu> fpu;    ///< only when xsave is empty
  std::optional<kvm_xcrs> xcrs;  ///< only with KVM_CAP_XSAVE
  std::vector<kvm_msr_entry> msrs;
  kvm_lapic_state lapic{};
  kvm_vcpu_events events{};
  kvm_mp_state mp_state{};
  kvm_debugregs debugregs{};
};

/// Reads the state of `vcpu`, with the MSRs `msr_indices` (see saveable_msrs).
[[nodiscard]] Result<VcpuState> save_vcpu_state(Vcpu& vcpu, std::span<const uint32_t> msr_indices);

/// Writes `state` into `vcpu` in this order: SREGS2, REGS, XSAVE (or FPU),
/// XCRS, MSRS, LAPIC, VCPU_EVENTS, MP_STATE, DEBUGREGS. Call after the VM's
/// irqchip/PIT state is restored and before its clock (see vm_state.h).
[[nodiscard]] Result<void> restore_vcpu_state(Vcpu& vcpu, const VcpuState& state);

/// KVM_GET_MSR_INDEX_LIST filtered to the MSRs KVM_GET_MSRS can actually read
/// on `vcpu` on this host (some listed MSRs depend on CPUID or host features).
[[nodiscard]] Result<std::vector<uint32_t>> saveable_msrs(const System& system, Vcpu& vcpu);

}  // namespace godwit::kvm
