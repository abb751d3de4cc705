// VM-wide state (in-kernel PICs, IOAPIC, PIT and the kvmclock base) as one
// value type. Restore in two steps around the vCPUs:
//
//   restore_vm_devices(vm, s);              // IRQCHIP (PIC master, slave, IOAPIC), PIT2
//   restore_vcpu_state(vcpu, ...) each;     // see vcpu_state.h
//   restore_vm_clock(vm, s);                // KVM_SET_CLOCK last
//
// The clock goes last so that nothing after it (e.g. MSR writes to the TSC)
// shifts the kvmclock the guest sees.
#pragma once

#include "base/result.h"
#include "kvm/uapi.h"

namespace godwit::kvm {

class Vm;

/// The state of a VM's in-kernel devices and clock (needs irqchip and PIT2).
struct VmState {
  kvm_irqchip pic_master{};
  kvm_irqchip pic_slave{};
  kvm_irqchip ioapic{};
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
};

/// Reads the PICs, IOAPIC, PIT and clock of `vm`.
[[nodiscard]] Result<VmState> save_vm_state(const Vm& vm);
/// Writes the PICs, IOAPIC and PIT (before the vCPUs are restored).
[[nodiscard]] Result<void> restore_vm_devices(Vm& vm, const VmState& state);
/// Writes the clock with KVM_SET_CLOCK, flags as saved: with
/// KVM_CLOCK_REALTIME set KVM adds the real time elapsed since the save;
/// clear it to resume the clock exactly where it stopped.
[[nodiscard]] Result<void> restore_vm_clock(Vm& vm, const VmState& state);
/// restore_vm_devices then restore_vm_clock, for VMs whose vCPUs are restored
/// separately or not at all.
[[nodiscard]] Result<void> restore_vm_state(Vm& vm, const VmState& state);

}  // namespace godwit::kvm
