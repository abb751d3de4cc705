// Vcpu register-state ioctls: REGS, SREGS(2), FPU, XSAVE(2), XCRS, MSRS,
// LAPIC, VCPU_EVENTS, MP_STATE, DEBUGREGS, CPUID and TSC rate.
#include <cinttypes>

#include "kvm/ioctl.h"
#include "kvm/vcpu.h"

namespace godwit::kvm {

using detail::checked_ioctl;
using detail::format;

namespace {

// One get/set pair of a fixed-size struct: "KVM_GET_REGS vcpu 0: ...".
template <typename T>
Result<T> get_struct(int fd, unsigned long request, const char* name, uint32_t vcpu_id) {
  T value{};
  TRY(checked_ioctl(fd, request, &value, format("%s vcpu %u", name, vcpu_id)));
  return value;
}

template <typename T>
Result<void> set_struct(int fd, unsigned long request, const char* name, uint32_t vcpu_id,
                        const T& value) {
  T copy = value;  // the kernel API takes a non-const pointer
  TRY(checked_ioctl(fd, request, &copy, format("%s vcpu %u", name, vcpu_id)));
  return {};
}

}  // namespace

Result<kvm_regs> Vcpu::get_regs() const {
  return get_struct<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS", id_);
}
Result<void> Vcpu::set_regs(const kvm_regs& regs) {
  return set_struct(fd_.get(), KVM_SET_REGS, "KVM_SET_REGS", id_, regs);
}
Result<kvm_sregs> Vcpu::get_sregs() const {
  return get_struct<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS", id_);
}
Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) {
  return set_struct(fd_.get(), KVM_SET_SREGS, "KVM_SET_SREGS", id_, sregs);
}
Result<kvm_sregs2> Vcpu::get_sregs2() const {
  return get_struct<kvm_sregs2>(fd_.get(), KVM_GET_SREGS2, "KVM_GET_SREGS2", id_);
}
Result<void> Vcpu::set_sregs2(const kvm_sregs2& sregs) {
  return set_struct(fd_.get(), KVM_SET_SREGS2, "KVM_SET_SREGS2", id_, sregs);
}
Result<kvm_fpu> Vcpu::get_fpu() const {
  return get_struct<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU", id_);
}
Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) {
  return set_struct(fd_.get(), KVM_SET_FPU, "KVM_SET_FPU", id_, fpu);
}

size_t Vcpu::xsave_size() const { return xsave2_size_ != 0 ? xsave2_size_ : sizeof(kvm_xsave); }

Result<std::vector<uint8_t>> Vcpu::get_xsave() const {
  // kvm_xsave is 4096 bytes; XSAVE2 may need more (e.g. AMX tile data), so
  // the buffer is sized from KVM_CAP_XSAVE2 and not from the struct.
  std::vector<uint8_t> buffer(xsave_size());
  unsigned long request = xsave2_size_ != 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
  const char* name = xsave2_size_ != 0 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE";
  TRY(checked_ioctl(fd_.get(), request, buffer.data(),
                    format("%s vcpu %u size %zu", name, id_, buffer.size())));
  return buffer;
}

Result<void> Vcpu::set_xsave(std::span<const uint8_t> xsave) {
  std::string what = format("KVM_SET_XSAVE vcpu %u size %zu", id_, xsave.size());
  // The kernel reads as many bytes as its own XSAVE size: never less.
  if (xsave.size() < xsave_size()) {
    return fail(what + format(": buffer shorter than the %zu bytes KVM reads", xsave_size()));
  }
  std::vector<uint8_t> copy(xsave.begin(), xsave.end());
  TRY(checked_ioctl(fd_.get(), KVM_SET_XSAVE, copy.data(), what));
  return {};
}

Result<kvm_xcrs> Vcpu::get_xcrs() const {
  return get_struct<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS", id_);
}
Result<void> Vcpu::set_xcrs(const kvm_xcrs& xcrs) {
  return set_struct(fd_.get(), KVM_SET_XCRS, "KVM_SET_XCRS", id_, xcrs);
}

Result<std::vector<kvm_msr_entry>> Vcpu::get_msrs(std::span<const uint32_t> indices) const {
  detail::FlexibleArray<kvm_msrs, kvm_msr_entry> buf(indices.size());
  buf.header()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buf.entries()[i].index = indices[i];
  std::string what = format("KVM_GET_MSRS vcpu %u nmsrs %zu", id_, indices.size());
  // KVM stops at the first MSR it cannot read and returns how many it read.
  int read = TRY(checked_ioctl(fd_.get(), KVM_GET_MSRS, buf.header(), what));
  if (static_cast<size_t>(read) < indices.size()) {
    return fail(what + format(": read %d, MSR 0x%x failed", read, indices[read]));
  }
  return std::vector<kvm_msr_entry>(buf.entries(), buf.entries() + indices.size());
}

Result<void> Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
  detail::FlexibleArray<kvm_msrs, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buf.entries()[i] = entries[i];
  std::string what = format("KVM_SET_MSRS vcpu %u nmsrs %zu", id_, entries.size());
  int written = TRY(checked_ioctl(fd_.get(), KVM_SET_MSRS, buf.header(), what));
  if (static_cast<size_t>(written) < entries.size()) {
    return fail(what + format(": set %d, MSR 0x%x value 0x%llx rejected", written,
                              entries[written].index,
                              static_cast<unsigned long long>(entries[written].data)));
  }
  return {};
}

Result<kvm_lapic_state> Vcpu::get_lapic() const {
  return get_struct<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC", id_);
}
Result<void> Vcpu::set_lapic(const kvm_lapic_state& lapic) {
  return set_struct(fd_.get(), KVM_SET_LAPIC, "KVM_SET_LAPIC", id_, lapic);
}
Result<kvm_vcpu_events> Vcpu::get_vcpu_events() const {
  return get_struct<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", id_);
}
Result<void> Vcpu::set_vcpu_events(const kvm_vcpu_events& events) {
  return set_struct(fd_.get(), KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", id_, events);
}
Result<kvm_mp_state> Vcpu::get_mp_state() const {
  return get_struct<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE", id_);
}
Result<void> Vcpu::set_mp_state(const kvm_mp_state& state) {
  return set_struct(fd_.get(), KVM_SET_MP_STATE, "KVM_SET_MP_STATE", id_, state);
}
Result<kvm_debugregs> Vcpu::get_debugregs() const {
  return get_struct<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", id_);
}
Result<void> Vcpu::set_debugregs(const kvm_debugregs& regs) {
  return set_struct(fd_.get(), KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", id_, regs);
}

Result<void> Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
  detail::FlexibleArray<kvm_cpuid2, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buf.entries()[i] = entries[i];
  TRY(checked_ioctl(fd_.get(), KVM_SET_CPUID2, buf.header(),
                    format("KVM_SET_CPUID2 vcpu %u nent %zu", id_, entries.size())));
  return {};
}

Result<std::vector<kvm_cpuid_entry2>> Vcpu::get_cpuid() const {
  for (uint32_t capacity = 64; capacity <= 16384; capacity *= 2) {
    detail::FlexibleArray<kvm_cpuid2, kvm_cpuid_entry2> buf(capacity);
    buf.header()->nent = capacity;
    if (::ioctl(fd_.get(), KVM_GET_CPUID2, buf.header()) == 0) {
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.header()->nent);
    }
    if (errno != E2BIG) {
      return fail_errno(format("KVM_GET_CPUID2 vcpu %u nent %u", id_, capacity));
    }
  }
  return fail(format("KVM_GET_CPUID2 vcpu %u: more than 16384 entries", id_), E2BIG);
}

Result<uint32_t> Vcpu::get_tsc_khz() const {
  int khz =
      TRY(checked_ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0, format("KVM_GET_TSC_KHZ vcpu %u", id_)));
  return static_cast<uint32_t>(khz);
}

Result<void> Vcpu::set_tsc_khz(uint32_t khz) {
  TRY(checked_ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz),
                    format("KVM_SET_TSC_KHZ vcpu %u khz %u", id_, khz)));
  return {};
}

}  // namespace godwit::kvm
