// A KVM virtual machine: memory slots, the in-kernel irqchip and PIT,
// interrupt injection (IRQ line, MSI, irqfd), ioeventfds, the VM clock,
// dirty logging (bitmap and ring) and vCPU creation. One method per ioctl.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/uapi.h"

namespace godwit::kvm {

class System;
class Vcpu;

/// Owns one VM file descriptor. Move-only. vCPUs keep the kernel VM alive on
/// their own, so a Vcpu may outlive this object.
class Vm {
 public:
  Vm(Vm&&) noexcept = default;
  Vm& operator=(Vm&&) noexcept = default;

  /// KVM_CHECK_EXTENSION on the VM fd (VM-specific answers, e.g. KVM_CAP_XSAVE2 size).
  [[nodiscard]] Result<int> check_extension(int cap) const;
  /// KVM_ENABLE_CAP with up to four arguments.
  [[nodiscard]] Result<void> enable_cap(uint32_t cap, std::span<const uint64_t> args = {});

  /// KVM_SET_USER_MEMORY_REGION; `size` 0 deletes the slot. `flags` e.g. KVM_MEM_LOG_DIRTY_PAGES.
  [[nodiscard]] Result<void> set_user_memory_region(uint32_t slot, uint32_t flags, uint64_t gpa,
                                                    uint64_t size, void* host);
  /// KVM_SET_TSS_ADDR: three pages the VMX backend needs below 4 GiB.
  [[nodiscard]] Result<void> set_tss_addr(uint64_t gpa);
  /// KVM_SET_IDENTITY_MAP_ADDR: one page the VMX backend needs below 4 GiB.
  [[nodiscard]] Result<void> set_identity_map_addr(uint64_t gpa);

  /// KVM_CREATE_IRQCHIP: in-kernel PICs, IOAPIC and per-vCPU LAPICs (before vCPUs).
  [[nodiscard]] Result<void> create_irqchip();
  /// KVM_CREATE_PIT2 (flags 0).
  [[nodiscard]] Result<void> create_pit2();
  /// KVM_IRQ_LINE: sets the level of `gsi`.
  [[nodiscard]] Result<void> irq_line(uint32_t gsi, bool level);
  /// KVM_SIGNAL_MSI; fails also when the guest blocked the message (return 0).
  [[nodiscard]] Result<void> signal_msi(uint64_t address, uint32_t data);
  /// KVM_SET_GSI_ROUTING: replaces the whole GSI routing table (irqchip pins, MSI routes).
  [[nodiscard]] Result<void> set_gsi_routing(std::span<const kvm_irq_routing_entry> entries);
  /// KVM_IRQFD: a write to `eventfd` raises `gsi` (edge).
  [[nodiscard]] Result<void> register_irqfd(int eventfd, uint32_t gsi);
  /// KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE: level-triggered; `resample_eventfd`
  /// is signalled when the guest EOIs `gsi`.
  [[nodiscard]] Result<void> register_resample_irqfd(int eventfd, uint32_t gsi,
                                                     int resample_eventfd);
  /// KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN.
  [[nodiscard]] Result<void> unregister_irqfd(int eventfd, uint32_t gsi);
  /// KVM_IOEVENTFD: a guest write of `len` bytes to `addr` (port when `pio`)
  /// signals `eventfd` without a userspace exit; only `datamatch` when given.
  [[nodiscard]] Result<void> register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                                std::optional<uint64_t> datamatch = std::nullopt);
  /// KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN (same arguments as registration).
  [[nodiscard]] Result<void> unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                                  bool pio,
                                                  std::optional<uint64_t> datamatch = std::nullopt);

  /// KVM_GET_CLOCK: the kvmclock base (with host realtime/TSC when flagged).
  [[nodiscard]] Result<kvm_clock_data> get_clock() const;
  /// KVM_SET_CLOCK (KVM_CLOCK_REALTIME in flags makes KVM add the elapsed time).
  [[nodiscard]] Result<void> set_clock(const kvm_clock_data& clock);
  /// KVM_GET_IRQCHIP for KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC.
  [[nodiscard]] Result<kvm_irqchip> get_irqchip(uint32_t chip_id) const;
  /// KVM_SET_IRQCHIP (chip chosen by `chip.chip_id`).
  [[nodiscard]] Result<void> set_irqchip(const kvm_irqchip& chip);
  /// KVM_GET_PIT2.
  [[nodiscard]] Result<kvm_pit_state2> get_pit2() const;
  /// KVM_SET_PIT2.
  [[nodiscard]] Result<void> set_pit2(const kvm_pit_state2& pit);

  /// KVM_ENABLE_CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): KVM_GET_DIRTY_LOG stops
  /// write-protecting; pages are re-protected by clear_dirty_log. With
  /// `initially_set`, every page of a newly logged slot starts dirty.
  [[nodiscard]] Result<void> enable_manual_dirty_log_protect(bool initially_set);
  /// KVM_GET_DIRTY_LOG: one bit per page of `slot` into `bitmap`, which must
  /// hold ceil(pages / 64) words.
  [[nodiscard]] Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap);
  /// KVM_CLEAR_DIRTY_LOG: re-protects the pages whose bits are set in `bitmap`
  /// (bit 0 = `first_page`). `first_page` and `num_pages` must be multiples of
  /// 64 except where the range ends at the end of the slot.
  [[nodiscard]] Result<void> clear_dirty_log(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                                             std::span<const uint64_t> bitmap);
  /// Enables a per-vCPU dirty ring of `bytes` (a power of two of kvm_dirty_gfn
  /// entries): KVM_CAP_DIRTY_LOG_RING_ACQ_REL when offered, else
  /// KVM_CAP_DIRTY_LOG_RING. Must come before the first create_vcpu.
  [[nodiscard]] Result<void> enable_dirty_ring(uint32_t bytes);
  /// Ring size in bytes given to enable_dirty_ring (0 when not enabled).
  [[nodiscard]] uint32_t dirty_ring_bytes() const { return dirty_ring_bytes_; }
  /// KVM_RESET_DIRTY_RINGS: re-protects harvested entries; returns how many.
  [[nodiscard]] Result<uint32_t> reset_dirty_rings();

  /// KVM_CREATE_VCPU and the mmap of its kvm_run page (and dirty ring).
  [[nodiscard]] Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id);

  /// The raw VM descriptor (still owned).
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  friend class System;
  Vm(UniqueFd fd, int vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}
  [[nodiscard]] Result<void> irqfd(int eventfd, uint32_t gsi, uint32_t flags, int resample_fd,
                                   const char* verb);
  [[nodiscard]] Result<void> ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                       std::optional<uint64_t> datamatch, bool deassign);

  UniqueFd fd_;
  int vcpu_mmap_size_ = 0;
  uint32_t dirty_ring_bytes_ = 0;
  std::map<uint32_t, uint64_t> slot_sizes_;  // to check dirty bitmap lengths
};

}  // namespace godwit::kvm
