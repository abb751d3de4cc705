// The /dev/kvm handle: system-wide queries (API version, capabilities,
// supported CPUID, MSR list) and VM creation. One method per ioctl, no policy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/uapi.h"

namespace godwit::kvm {

class Vm;

/// Owns the /dev/kvm file descriptor. Move-only.
class System {
 public:
  /// Opens `path` and checks KVM_GET_API_VERSION == 12.
  [[nodiscard]] static Result<System> open(const char* path = "/dev/kvm");

  /// The API version read at open (always 12).
  [[nodiscard]] int api_version() const { return api_version_; }
  /// KVM_CHECK_EXTENSION: 0 when unsupported, else a capability-specific value.
  [[nodiscard]] Result<int> check_extension(int cap) const;
  /// KVM_GET_SUPPORTED_CPUID (the buffer grows on E2BIG).
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  /// KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores for a vCPU.
  [[nodiscard]] Result<std::vector<uint32_t>> msr_index_list() const;
  /// KVM_GET_MSR_FEATURE_INDEX_LIST: the feature MSRs (capabilities) this host reports.
  [[nodiscard]] Result<std::vector<uint32_t>> msr_feature_index_list() const;
  /// KVM_GET_VCPU_MMAP_SIZE: bytes of the per-vCPU kvm_run mapping.
  [[nodiscard]] Result<int> vcpu_mmap_size() const;
  /// KVM_CREATE_VM with machine `type` (0 on x86).
  [[nodiscard]] Result<std::unique_ptr<Vm>> create_vm(unsigned long type = 0) const;
  /// The raw /dev/kvm descriptor (still owned).
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  System(UniqueFd fd, int api_version) : fd_(std::move(fd)), api_version_(api_version) {}
  [[nodiscard]] Result<std::vector<uint32_t>> msr_list(unsigned long request,
                                                       const char* name) const;

  UniqueFd fd_;
  int api_version_ = 0;
};

}  // namespace godwit::kvm
