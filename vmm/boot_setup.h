// Machine-level boot: per-vCPU CPU setup (CPUID topology, LAPIC LINT pins,
// FPU defaults) and loading the configured boot source into the boot vCPU.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "kvm/uapi.h"
#include "kvm/vcpu.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"

namespace godwit {

/// Sets CPUID (APIC ID = vCPU index), the LAPIC LINT0 (ExtINT) / LINT1 (NMI)
/// pins and the FPU/SSE reset defaults of one vCPU.
[[nodiscard]] Result<void> configure_vcpu(kvm::Vcpu& vcpu,
                                          std::span<const kvm_cpuid_entry2> supported,
                                          uint32_t vcpu_count);

/// How the guest learns about its devices (built by the machine from one
/// fdt::MachineDescription).
struct DeviceAnnouncement {
  std::span<const uint8_t> dtb;  ///< the flattened device tree
  std::string virtio_cmdline;    ///< "virtio_mmio.device=..." items (empty: no devices)
};

/// Loads the kernel or raw image of `config` into memory, patches the guest
/// parameters and sets the boot vCPU's registers for the entry. Kernel boots
/// get the devices per config.virtio_discovery: the DTB as a SETUP_DTB entry
/// at fdt::kSetupDtbEntryAddr linked from the zero page, or the command-line
/// items (always for PVH, which has no setup_data).
[[nodiscard]] Result<void> load_boot(const VmConfig& config, GuestMemory& memory,
                                     kvm::Vcpu& boot_vcpu, const DeviceAnnouncement& devices);

}  // namespace godwit
