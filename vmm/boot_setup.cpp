// configure_vcpu() and load_boot().
#include "vmm/boot_setup.h"

#include <cstring>

#include "vmm/boot/boot_params.h"
#include "vmm/boot/cpu_state.h"
#include "vmm/boot/cpuid.h"
#include "vmm/boot/guest_params.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/boot/raw_image.h"
#include "vmm/fdt/fdt_delivery.h"
#include "vmm/fdt/fdt_layout.h"

namespace godwit {
namespace {

constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryModeExtInt = 7u << 8;
constexpr uint32_t kDeliveryModeNmi = 4u << 8;
constexpr uint32_t kDeliveryModeMask = 7u << 8;

uint32_t read_apic_reg(const kvm_lapic_state& s, size_t off) {
  uint32_t v;
  std::memcpy(&v, s.regs + off, sizeof v);
  return v;
}
void write_apic_reg(kvm_lapic_state& s, size_t off, uint32_t v) {
  std::memcpy(s.regs + off, &v, sizeof v);
}

}  // namespace

Result<void> configure_vcpu(kvm::Vcpu& vcpu, std::span<const kvm_cpuid_entry2> supported,
                            uint32_t vcpu_count) {
  auto cpuid = boot::make_vcpu_cpuid(supported, vcpu.id(), vcpu_count);
  TRY_VOID(vcpu.set_cpuid(cpuid));

  // Linux expects the BIOS to have set the local interrupt pins: LINT0 takes
  // the legacy PIC (ExtINT), LINT1 NMIs.
  kvm_lapic_state lapic = TRY(vcpu.get_lapic());
  write_apic_reg(lapic, kApicLvtLint0,
                 (read_apic_reg(lapic, kApicLvtLint0) & ~kDeliveryModeMask) | kDeliveryModeExtInt);
  write_apic_reg(lapic, kApicLvtLint1,
                 (read_apic_reg(lapic, kApicLvtLint1) & ~kDeliveryModeMask) | kDeliveryModeNmi);
  TRY_VOID(vcpu.set_lapic(lapic));

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  TRY_VOID(vcpu.set_fpu(fpu));
  return {};
}

namespace {

/// Loads a Linux kernel and announces the devices as config.virtio_discovery says.
Result<boot::BootEntry> load_linux(const KernelBoot& kernel, const VmConfig& config,
                                   GuestMemory& memory, const DeviceAnnouncement& devices) {
  const bool use_dtb = config.virtio_discovery == VirtioDiscovery::dtb;
  boot::KernelSpec spec{kernel.kernel, kernel.initrd, kernel.cmdline};
  auto with_cmdline_devices = [&] {
    if (devices.virtio_cmdline.empty()) return kernel.cmdline;
    return kernel.cmdline.empty() ? devices.virtio_cmdline
                                  : kernel.cmdline + " " + devices.virtio_cmdline;
  };
  if (!use_dtb) spec.cmdline = with_cmdline_devices();
  boot::BootEntry entry = TRY(boot::load_kernel(memory, spec, config.vcpus));
  if (!use_dtb) return entry;
  if (entry.rsi == 0) {
    // PVH: hvm_start_info has no setup_data; reload with the command line.
    spec.cmdline = with_cmdline_devices();
    return boot::load_kernel(memory, spec, config.vcpus);
  }
  auto setup = fdt::setup_dtb_entry(devices.dtb);
  if (!setup) return fail(setup.error().context("SETUP_DTB for " + kernel.kernel));
  if (auto r = memory.write(fdt::kSetupDtbEntryAddr, *setup); !r)
    return fail(r.error().context("SETUP_DTB for " + kernel.kernel));
  if (auto r = boot::link_setup_data(memory, entry.rsi, fdt::kSetupDtbEntryAddr); !r)
    return fail(r.error().context(kernel.kernel + " (use --virtio-discovery cmdline)"));
  return entry;
}

}  // namespace

Result<void> load_boot(const VmConfig& config, GuestMemory& memory, kvm::Vcpu& boot_vcpu,
                       const DeviceAnnouncement& devices) {
  boot::BootEntry entry;
  if (const auto* k = std::get_if<KernelBoot>(&config.boot)) {
    entry = TRY(load_linux(*k, config, memory, devices));
  } else {
    auto spec = TRY(boot::parse_image_spec(std::get<ImageBoot>(config.boot).spec));
    entry = TRY(boot::load_raw_image(memory, spec));
  }
  if (!config.guest_params.empty()) {
    auto params = TRY(boot::parse_guest_params(config.guest_params));
    auto patched = boot::patch_guest_params(memory, entry.image_base, entry.image_size, params);
    if (!patched) return fail(patched.error().context("--guest-param"));
  }
  kvm_regs regs{};
  kvm_sregs sregs = TRY(boot_vcpu.get_sregs());
  TRY_VOID(boot::make_initial_cpu_state(entry, regs, sregs));
  TRY_VOID(boot_vcpu.set_sregs(sregs));
  TRY_VOID(boot_vcpu.set_regs(regs));
  return {};
}

}  // namespace godwit
