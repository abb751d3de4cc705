// System (/dev/kvm) ioctls.
#include "kvm/system.h"

#include <fcntl.h>

#include "kvm/ioctl.h"
#include "kvm/vm.h"

namespace godwit::kvm {

using detail::checked_ioctl;
using detail::format;

Result<System> System::open(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  if (!fd) return fail_errno(format("open %s", path));
  int version = TRY(checked_ioctl(fd.get(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION"));
  if (version != KVM_API_VERSION) {
    return fail(
        format("KVM_GET_API_VERSION on %s: got %d, need %d", path, version, KVM_API_VERSION));
  }
  return System(std::move(fd), version);
}

Result<int> System::check_extension(int cap) const {
  return checked_ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap, format("KVM_CHECK_EXTENSION %d", cap));
}

Result<std::vector<kvm_cpuid_entry2>> System::supported_cpuid() const {
  // The kernel does not say how many entries it needs: grow until it fits.
  for (uint32_t capacity = 64; capacity <= 16384; capacity *= 2) {
    detail::FlexibleArray<kvm_cpuid2, kvm_cpuid_entry2> buf(capacity);
    buf.header()->nent = capacity;
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, buf.header()) == 0) {
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.header()->nent);
    }
    if (errno != E2BIG) return fail_errno(format("KVM_GET_SUPPORTED_CPUID nent %u", capacity));
  }
  return fail("KVM_GET_SUPPORTED_CPUID: more than 16384 entries", E2BIG);
}

Result<std::vector<uint32_t>> System::msr_list(unsigned long request, const char* name) const {
  // A first call with room for nothing reports the count (E2BIG).
  kvm_msr_list probe{};
  if (::ioctl(fd_.get(), request, &probe) < 0 && errno != E2BIG) {
    return fail_errno(format("%s nmsrs 0", name));
  }
  detail::FlexibleArray<kvm_msr_list, uint32_t> buf(probe.nmsrs);
  buf.header()->nmsrs = probe.nmsrs;
  TRY(checked_ioctl(fd_.get(), request, buf.header(), format("%s nmsrs %u", name, probe.nmsrs)));
  return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.header()->nmsrs);
}

Result<std::vector<uint32_t>> System::msr_index_list() const {
  return msr_list(KVM_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST");
}

Result<std::vector<uint32_t>> System::msr_feature_index_list() const {
  return msr_list(KVM_GET_MSR_FEATURE_INDEX_LIST, "KVM_GET_MSR_FEATURE_INDEX_LIST");
}

Result<int> System::vcpu_mmap_size() const {
  return checked_ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
}

Result<std::unique_ptr<Vm>> System::create_vm(unsigned long type) const {
  int mmap_size = TRY(vcpu_mmap_size());
  int vm_fd =
      TRY(checked_ioctl(fd_.get(), KVM_CREATE_VM, type, format("KVM_CREATE_VM type %lu", type)));
  return std::unique_ptr<Vm>(new Vm(UniqueFd(vm_fd), mmap_size));
}

}  // namespace godwit::kvm
