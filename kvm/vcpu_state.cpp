// Saving and restoring a whole vCPU, and finding the MSRs worth saving.
#include "kvm/vcpu_state.h"

#include "kvm/system.h"
#include "kvm/vcpu.h"

namespace godwit::kvm {

Result<VcpuState> save_vcpu_state(Vcpu& vcpu, std::span<const uint32_t> msr_indices) {
  VcpuState state;
  state.regs = TRY(vcpu.get_regs());
  state.sregs2 = TRY(vcpu.get_sregs2());
  if (vcpu.has_xsave()) {
    state.xsave = TRY(vcpu.get_xsave());
    state.xcrs = TRY(vcpu.get_xcrs());
  } else {
    state.fpu = TRY(vcpu.get_fpu());
  }
  state.msrs = TRY(vcpu.get_msrs(msr_indices));
  state.lapic = TRY(vcpu.get_lapic());
  state.events = TRY(vcpu.get_vcpu_events());
  state.mp_state = TRY(vcpu.get_mp_state());
  state.debugregs = TRY(vcpu.get_debugregs());
  return state;
}

Result<void> restore_vcpu_state(Vcpu& vcpu, const VcpuState& state) {
  // SREGS2 first: CR0/CR4/EFER decide how the rest (e.g. MSRs) is checked.
  TRY_VOID(vcpu.set_sregs2(state.sregs2));
  TRY_VOID(vcpu.set_regs(state.regs));
  if (!state.xsave.empty()) TRY_VOID(vcpu.set_xsave(state.xsave));
  if (state.fpu) TRY_VOID(vcpu.set_fpu(*state.fpu));
  if (state.xcrs) TRY_VOID(vcpu.set_xcrs(*state.xcrs));
  TRY_VOID(vcpu.set_msrs(state.msrs));
  TRY_VOID(vcpu.set_lapic(state.lapic));
  TRY_VOID(vcpu.set_vcpu_events(state.events));
  // MP_STATE after LAPIC and events: setting the LAPIC can change it.
  TRY_VOID(vcpu.set_mp_state(state.mp_state));
  TRY_VOID(vcpu.set_debugregs(state.debugregs));
  return {};
}

Result<std::vector<uint32_t>> saveable_msrs(const System& system, Vcpu& vcpu) {
  std::vector<uint32_t> listed = TRY(system.msr_index_list());
  std::vector<uint32_t> readable;
  readable.reserve(listed.size());
  for (uint32_t index : listed) {
    if (vcpu.get_msrs(std::span<const uint32_t>(&index, 1))) readable.push_back(index);
  }
  return readable;
}

}  // namespace godwit::kvm
