// Vm ioctls: capabilities, memory slots, irqchip/PIT, interrupts, eventfds,
// clock and vCPU creation. Dirty logging lives in vm_dirty.cpp.
#include "kvm/vm.h"

#include <unistd.h>

#include <cinttypes>
#include <cstring>

#include "kvm/ioctl.h"
#include "kvm/vcpu.h"

namespace godwit::kvm {

using detail::checked_ioctl;
using detail::format;

Result<int> Vm::check_extension(int cap) const {
  return checked_ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap,
                       format("KVM_CHECK_EXTENSION (vm) %d", cap));
}

Result<void> Vm::enable_cap(uint32_t cap, std::span<const uint64_t> args) {
  kvm_enable_cap request{};
  request.cap = cap;
  if (args.size() > std::size(request.args)) {
    return fail(format("KVM_ENABLE_CAP %u: %zu arguments, at most 4", cap, args.size()));
  }
  std::string what = format("KVM_ENABLE_CAP %u", cap);
  for (size_t i = 0; i < args.size(); ++i) {
    request.args[i] = args[i];
    what += format(" 0x%" PRIx64, args[i]);
  }
  TRY(checked_ioctl(fd_.get(), KVM_ENABLE_CAP, &request, what));
  return {};
}

Result<void> Vm::set_user_memory_region(uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size,
                                        void* host) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  TRY(checked_ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region,
                    format("KVM_SET_USER_MEMORY_REGION slot %u flags 0x%x gpa 0x%" PRIx64
                           " size 0x%" PRIx64 " host %p",
                           slot, flags, gpa, size, host)));
  if (size == 0) {
    slot_sizes_.erase(slot);
  } else {
    slot_sizes_[slot] = size;
  }
  return {};
}

Result<void> Vm::set_tss_addr(uint64_t gpa) {
  TRY(checked_ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(gpa),
                    format("KVM_SET_TSS_ADDR 0x%" PRIx64, gpa)));
  return {};
}

Result<void> Vm::set_identity_map_addr(uint64_t gpa) {
  TRY(checked_ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &gpa,
                    format("KVM_SET_IDENTITY_MAP_ADDR 0x%" PRIx64, gpa)));
  return {};
}

Result<void> Vm::create_irqchip() {
  TRY(checked_ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP"));
  return {};
}

Result<void> Vm::create_pit2() {
  kvm_pit_config config{};
  TRY(checked_ioctl(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2 flags 0"));
  return {};
}

Result<void> Vm::irq_line(uint32_t gsi, bool level) {
  kvm_irq_level request{};
  request.irq = gsi;
  request.level = level ? 1 : 0;
  TRY(checked_ioctl(fd_.get(), KVM_IRQ_LINE, &request,
                    format("KVM_IRQ_LINE gsi %u level %d", gsi, level ? 1 : 0)));
  return {};
}

Result<void> Vm::signal_msi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  std::string what = format("KVM_SIGNAL_MSI address 0x%" PRIx64 " data 0x%x", address, data);
  int delivered = TRY(checked_ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi, what));
  if (delivered == 0) return fail(what + ": blocked by the guest");
  return {};
}

Result<void> Vm::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) {
  detail::FlexibleArray<kvm_irq_routing, kvm_irq_routing_entry> table(entries.size());
  table.header()->nr = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) table.entries()[i] = entries[i];
  TRY(checked_ioctl(fd_.get(), KVM_SET_GSI_ROUTING, table.header(),
                    format("KVM_SET_GSI_ROUTING nr %zu", entries.size())));
  return {};
}

Result<void> Vm::irqfd(int eventfd, uint32_t gsi, uint32_t flags, int resample_fd,
                       const char* verb) {
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(eventfd);
  request.gsi = gsi;
  request.flags = flags;
  request.resamplefd = static_cast<uint32_t>(resample_fd);
  TRY(checked_ioctl(fd_.get(), KVM_IRQFD, &request,
                    format("KVM_IRQFD %s fd %d gsi %u flags 0x%x", verb, eventfd, gsi, flags)));
  return {};
}

Result<void> Vm::register_irqfd(int eventfd, uint32_t gsi) {
  return irqfd(eventfd, gsi, 0, 0, "assign");
}

Result<void> Vm::register_resample_irqfd(int eventfd, uint32_t gsi, int resample_eventfd) {
  return irqfd(eventfd, gsi, KVM_IRQFD_FLAG_RESAMPLE, resample_eventfd, "assign");
}

Result<void> Vm::unregister_irqfd(int eventfd, uint32_t gsi) {
  return irqfd(eventfd, gsi, KVM_IRQFD_FLAG_DEASSIGN, 0, "deassign");
}

Result<void> Vm::ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                           std::optional<uint64_t> datamatch, bool deassign) {
  kvm_ioeventfd request{};
  request.addr = addr;
  request.len = len;
  request.fd = eventfd;
  if (pio) request.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (deassign) request.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (datamatch) {
    request.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    request.datamatch = *datamatch;
  }
  std::string what =
      format("KVM_IOEVENTFD %s fd %d %s 0x%" PRIx64 " len %u", deassign ? "deassign" : "assign",
             eventfd, pio ? "port" : "mmio", addr, len);
  if (datamatch) what += format(" datamatch 0x%" PRIx64, *datamatch);
  TRY(checked_ioctl(fd_.get(), KVM_IOEVENTFD, &request, what));
  return {};
}

Result<void> Vm::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                    std::optional<uint64_t> datamatch) {
  return ioeventfd(eventfd, addr, len, pio, datamatch, false);
}

Result<void> Vm::unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                      std::optional<uint64_t> datamatch) {
  return ioeventfd(eventfd, addr, len, pio, datamatch, true);
}

Result<kvm_clock_data> Vm::get_clock() const {
  kvm_clock_data clock{};
  TRY(checked_ioctl(fd_.get(), KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK"));
  return clock;
}

Result<void> Vm::set_clock(const kvm_clock_data& clock) {
  kvm_clock_data copy = clock;
  TRY(checked_ioctl(fd_.get(), KVM_SET_CLOCK, &copy,
                    format("KVM_SET_CLOCK clock %llu flags 0x%x",
                           static_cast<unsigned long long>(clock.clock), clock.flags)));
  return {};
}

Result<kvm_irqchip> Vm::get_irqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  TRY(checked_ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip, format("KVM_GET_IRQCHIP chip %u", chip_id)));
  return chip;
}

Result<void> Vm::set_irqchip(const kvm_irqchip& chip) {
  kvm_irqchip copy = chip;
  TRY(checked_ioctl(fd_.get(), KVM_SET_IRQCHIP, &copy,
                    format("KVM_SET_IRQCHIP chip %u", chip.chip_id)));
  return {};
}

Result<kvm_pit_state2> Vm::get_pit2() const {
  kvm_pit_state2 pit{};
  TRY(checked_ioctl(fd_.get(), KVM_GET_PIT2, &pit, "KVM_GET_PIT2"));
  return pit;
}

Result<void> Vm::set_pit2(const kvm_pit_state2& pit) {
  kvm_pit_state2 copy = pit;
  TRY(checked_ioctl(fd_.get(), KVM_SET_PIT2, &copy, "KVM_SET_PIT2"));
  return {};
}

Result<std::unique_ptr<Vcpu>> Vm::create_vcpu(uint32_t id) {
  int raw = TRY(checked_ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id),
                              format("KVM_CREATE_VCPU id %u", id)));
  UniqueFd vcpu_fd(raw);
  auto run_page = TRY(detail::Mapping::map_shared(
      vcpu_fd.get(), static_cast<size_t>(vcpu_mmap_size_), 0,
      format("mmap kvm_run of vCPU %u (%d bytes)", id, vcpu_mmap_size_)));
  detail::Mapping ring;
  if (dirty_ring_bytes_ != 0) {
    off_t offset = static_cast<off_t>(KVM_DIRTY_LOG_PAGE_OFFSET) * ::sysconf(_SC_PAGESIZE);
    ring = TRY(detail::Mapping::map_shared(
        vcpu_fd.get(), dirty_ring_bytes_, offset,
        format("mmap dirty ring of vCPU %u (%u bytes)", id, dirty_ring_bytes_)));
  }
  // Zero when KVM_CAP_XSAVE2 is missing: the vCPU then uses KVM_GET_XSAVE.
  int xsave2_size = check_extension(KVM_CAP_XSAVE2).value_or(0);
  bool xsave_supported = check_extension(KVM_CAP_XSAVE).value_or(0) > 0;
  return std::unique_ptr<Vcpu>(new Vcpu(std::move(vcpu_fd), id, std::move(run_page),
                                        std::move(ring), static_cast<uint32_t>(xsave2_size),
                                        xsave_supported));
}

}  // namespace godwit::kvm
