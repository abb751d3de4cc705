// Saving and restoring VM-wide in-kernel device state and the clock.
#include "kvm/vm_state.h"

#include "kvm/vm.h"

namespace godwit::kvm {

Result<VmState> save_vm_state(const Vm& vm) {
  VmState state;
  state.pic_master = TRY(vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER));
  state.pic_slave = TRY(vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE));
  state.ioapic = TRY(vm.get_irqchip(KVM_IRQCHIP_IOAPIC));
  state.pit = TRY(vm.get_pit2());
  state.clock = TRY(vm.get_clock());
  return state;
}

Result<void> restore_vm_devices(Vm& vm, const VmState& state) {
  TRY_VOID(vm.set_irqchip(state.pic_master));
  TRY_VOID(vm.set_irqchip(state.pic_slave));
  TRY_VOID(vm.set_irqchip(state.ioapic));
  TRY_VOID(vm.set_pit2(state.pit));
  return {};
}

Result<void> restore_vm_clock(Vm& vm, const VmState& state) { return vm.set_clock(state.clock); }

Result<void> restore_vm_state(Vm& vm, const VmState& state) {
  TRY_VOID(restore_vm_devices(vm, state));
  return restore_vm_clock(vm, state);
}

}  // namespace godwit::kvm
