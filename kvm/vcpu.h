// A KVM vCPU: KVM_RUN with a typed exit, the immediate_exit kick, every
// register-state get/set ioctl, CPUID, and harvesting its dirty ring.
// Every method except set_immediate_exit must be called from the one thread
// that runs this vCPU: on PVM hosts (and for some ioctls elsewhere) a state
// ioctl blocks while another thread is inside KVM_RUN.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/exit.h"
#include "kvm/mapping.h"
#include "kvm/uapi.h"

namespace godwit::kvm {

class Vm;

/// Owns one vCPU fd, its kvm_run mapping and (when enabled) its dirty ring.
/// Move-only.
class Vcpu {
 public:
  Vcpu(Vcpu&&) noexcept = default;
  Vcpu& operator=(Vcpu&&) noexcept = default;

  /// KVM_RUN. EINTR and EAGAIN become Interrupted; other errors fail.
  [[nodiscard]] Result<VcpuExit> run();
  /// Stores kvm_run->immediate_exit: while set, KVM_RUN returns EINTR at once.
  /// The only method safe to call from another thread (pair it with a signal).
  void set_immediate_exit(bool value);
  /// The mmapped kvm_run page.
  [[nodiscard]] kvm_run* run_struct() { return static_cast<kvm_run*>(run_page_.get()); }
  /// The vCPU id given at creation (the initial APIC id).
  [[nodiscard]] uint32_t id() const { return id_; }
  /// The raw vCPU descriptor (still owned).
  [[nodiscard]] int fd() const { return fd_.get(); }

  /// KVM_GET_REGS.
  [[nodiscard]] Result<kvm_regs> get_regs() const;
  /// KVM_SET_REGS.
  [[nodiscard]] Result<void> set_regs(const kvm_regs& regs);
  /// KVM_GET_SREGS.
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  /// KVM_SET_SREGS.
  [[nodiscard]] Result<void> set_sregs(const kvm_sregs& sregs);
  /// KVM_GET_SREGS2 (adds the PDPTRs; needs KVM_CAP_SREGS2).
  [[nodiscard]] Result<kvm_sregs2> get_sregs2() const;
  /// KVM_SET_SREGS2.
  [[nodiscard]] Result<void> set_sregs2(const kvm_sregs2& sregs);
  /// KVM_GET_FPU (legacy x87/SSE state; prefer XSAVE).
  [[nodiscard]] Result<kvm_fpu> get_fpu() const;
  /// KVM_SET_FPU.
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu& fpu);
  /// KVM_GET_XSAVE2 with the KVM_CAP_XSAVE2 size, else KVM_GET_XSAVE (4096 bytes).
  [[nodiscard]] Result<std::vector<uint8_t>> get_xsave() const;
  /// KVM_SET_XSAVE; `xsave` must be at least xsave_size() bytes.
  [[nodiscard]] Result<void> set_xsave(std::span<const uint8_t> xsave);
  /// Bytes of the XSAVE buffer get_xsave returns.
  [[nodiscard]] size_t xsave_size() const;
  /// Whether the host has KVM_CAP_XSAVE (else only get_fpu/set_fpu).
  [[nodiscard]] bool has_xsave() const { return xsave2_size_ != 0 || xsave_supported_; }
  /// KVM_GET_XCRS.
  [[nodiscard]] Result<kvm_xcrs> get_xcrs() const;
  /// KVM_SET_XCRS.
  [[nodiscard]] Result<void> set_xcrs(const kvm_xcrs& xcrs);
  /// KVM_GET_MSRS for `indices`; fails naming the first MSR KVM could not read.
  [[nodiscard]] Result<std::vector<kvm_msr_entry>> get_msrs(
      std::span<const uint32_t> indices) const;
  /// KVM_SET_MSRS; fails naming the first MSR KVM did not accept.
  [[nodiscard]] Result<void> set_msrs(std::span<const kvm_msr_entry> entries);
  /// KVM_GET_LAPIC (needs the in-kernel irqchip).
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  /// KVM_SET_LAPIC.
  [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state& lapic);
  /// KVM_GET_VCPU_EVENTS (pending exceptions, interrupts, NMI, SIPI).
  [[nodiscard]] Result<kvm_vcpu_events> get_vcpu_events() const;
  /// KVM_SET_VCPU_EVENTS.
  [[nodiscard]] Result<void> set_vcpu_events(const kvm_vcpu_events& events);
  /// KVM_GET_MP_STATE.
  [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
  /// KVM_SET_MP_STATE.
  [[nodiscard]] Result<void> set_mp_state(const kvm_mp_state& state);
  /// KVM_GET_DEBUGREGS.
  [[nodiscard]] Result<kvm_debugregs> get_debugregs() const;
  /// KVM_SET_DEBUGREGS.
  [[nodiscard]] Result<void> set_debugregs(const kvm_debugregs& regs);
  /// KVM_SET_CPUID2.
  [[nodiscard]] Result<void> set_cpuid(std::span<const kvm_cpuid_entry2> entries);
  /// KVM_GET_CPUID2 (what set_cpuid installed; the buffer grows on E2BIG).
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> get_cpuid() const;
  /// KVM_GET_TSC_KHZ: this vCPU's TSC rate.
  [[nodiscard]] Result<uint32_t> get_tsc_khz() const;
  /// KVM_SET_TSC_KHZ (hosts without TSC scaling accept only their own rate).
  [[nodiscard]] Result<void> set_tsc_khz(uint32_t khz);

  /// Collects the entries of this vCPU's dirty ring flagged DIRTY, in order,
  /// passing (slot, page offset in slot) to `sink` and flagging each RESET
  /// (release store). Returns how many; follow with Vm::reset_dirty_rings.
  /// `slot` holds the address space id in its upper 16 bits (0 on x86 outside SMM).
  [[nodiscard]] Result<size_t> harvest_dirty_ring(
      const std::function<void(uint32_t slot, uint64_t offset)>& sink);

 private:
  friend class Vm;
  Vcpu(UniqueFd fd, uint32_t id, detail::Mapping run_page, detail::Mapping ring,
       uint32_t xsave2_size, bool xsave_supported);

  UniqueFd fd_;
  uint32_t id_ = 0;
  detail::Mapping run_page_;
  detail::Mapping ring_;
  uint32_t ring_entries_ = 0;
  uint32_t ring_next_ = 0;  // index of the next entry to harvest (free-running)
  uint32_t xsave2_size_ = 0;
  bool xsave_supported_ = false;
};

}  // namespace godwit::kvm
