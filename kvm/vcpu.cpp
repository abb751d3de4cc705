// Vcpu: KVM_RUN, the immediate_exit kick and dirty-ring harvesting.
#include "kvm/vcpu.h"

#include <atomic>
#include <cerrno>

#include "kvm/ioctl.h"

namespace godwit::kvm {

using detail::format;

Vcpu::Vcpu(UniqueFd fd, uint32_t id, detail::Mapping run_page, detail::Mapping ring,
           uint32_t xsave2_size, bool xsave_supported)
    : fd_(std::move(fd)),
      id_(id),
      run_page_(std::move(run_page)),
      ring_(std::move(ring)),
      ring_entries_(static_cast<uint32_t>(ring_.size() / sizeof(kvm_dirty_gfn))),
      xsave2_size_(xsave2_size),
      xsave_supported_(xsave_supported) {}

Result<VcpuExit> Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    // EINTR: a signal or immediate_exit. EAGAIN: on PVM a vCPU blocked in
    // wait-for-SIPI returns it once when the SIPI arrives.
    if (errno == EINTR || errno == EAGAIN) return Interrupted{};
    return fail_errno(format("KVM_RUN vcpu %u", id_));
  }
  return decode_exit(run_struct());
}

void Vcpu::set_immediate_exit(bool value) {
  // Written from other threads while KVM_RUN may be reading it.
  std::atomic_ref<uint8_t>(run_struct()->immediate_exit)
      .store(value ? 1 : 0, std::memory_order_release);
}

Result<size_t> Vcpu::harvest_dirty_ring(
    const std::function<void(uint32_t slot, uint64_t offset)>& sink) {
  if (ring_entries_ == 0)
    return fail(format("harvest dirty ring of vcpu %u: ring not enabled", id_));
  auto* entries = static_cast<kvm_dirty_gfn*>(ring_.get());
  size_t harvested = 0;
  // Bounded by the ring size: an entry is only re-published after the reset
  // ioctl, so one pass can never see more than ring_entries_ dirty entries.
  while (harvested < ring_entries_) {
    kvm_dirty_gfn& entry = entries[ring_next_ % ring_entries_];
    uint32_t flags = std::atomic_ref<uint32_t>(entry.flags).load(std::memory_order_acquire);
    if ((flags & KVM_DIRTY_GFN_F_DIRTY) == 0) break;
    sink(entry.slot, entry.offset);
    std::atomic_ref<uint32_t>(entry.flags).store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
    ++ring_next_;
    ++harvested;
  }
  return harvested;
}

}  // namespace godwit::kvm
