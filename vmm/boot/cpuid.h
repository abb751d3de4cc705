// Per-vCPU CPUID: the host's KVM_GET_SUPPORTED_CPUID list patched with each
// vCPU's topology. Pure; the caller passes the result to KVM_SET_CPUID2.
//
// Topology: one package, one thread per core, `vcpu_count` cores, APIC ID =
// x2APIC ID = vCPU index.
//   leaf 1      EBX[31:24] APIC ID, EBX[23:16] logical processors in the
//               package, EDX[28] HTT when count > 1, ECX[31] hypervisor
//   leaf 4      EAX[31:26] cores - 1; EAX[25:14] sharing: 0 for L1/L2, all
//               cores for L3 and beyond
//   leaf 0xB    subleaf 0 SMT (shift 0, 1 thread), subleaf 1 core (shift =
//   and 0x1F    ceil(log2 count), count), subleaf 2 invalid; EDX = x2APIC ID
//               (each leaf only when the host lists it)
// Everything else is kept as supported.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvm/uapi.h"  // <linux/kvm.h> with the C++ flexible-array layout fixed

namespace godwit::boot {

/// CPUID leaf 1 ECX bit 31: running under a hypervisor.
inline constexpr uint32_t kCpuidHypervisorBit = 1u << 31;
/// CPUID leaf 1 EDX bit 28: multi-threading (EBX[23:16] valid).
inline constexpr uint32_t kCpuidHttBit = 1u << 28;

/// The CPUID entries for vCPU `vcpu_index` of `vcpu_count`.
[[nodiscard]] std::vector<kvm_cpuid_entry2> make_vcpu_cpuid(
    std::span<const kvm_cpuid_entry2> supported, uint32_t vcpu_index, uint32_t vcpu_count);

}  // namespace godwit::boot
