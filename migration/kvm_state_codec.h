// Section payloads of the KVM-held state: one vCPU (kvm::VcpuState, kind
// "vcpu") and the VM-wide in-kernel devices and clock (kvm::VmState, kind
// "vm"). Every named field of the kernel structs is encoded explicitly;
// padding and reserved fields are not saved and decode as zero. Opaque blobs:
// the XSAVE area (u32 length + bytes, layout defined by the CPU) and the LAPIC
// register page (u32 length = 1024 + bytes, layout defined by the APIC).
// Byte layouts: docs/state-format.md.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"
#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "migration/section.h"

namespace godwit::migration {

/// Section kind of one vCPU.
inline constexpr std::string_view kVcpuSectionKind = "vcpu";
/// Version encode(VcpuState) writes; decode accepts kVcpuStateMinVersion..this.
inline constexpr uint32_t kVcpuStateVersion = 1;
/// Oldest vCPU section version decoded.
inline constexpr uint32_t kVcpuStateMinVersion = 1;
/// Section kind of the VM-wide KVM state.
inline constexpr std::string_view kVmSectionKind = "vm";
/// Version encode(VmState) writes.
inline constexpr uint32_t kVmStateVersion = 1;
/// Oldest VM section version decoded.
inline constexpr uint32_t kVmStateMinVersion = 1;

/// Writes the vCPU state at kVcpuStateVersion.
void encode(SectionWriter& out, const kvm::VcpuState& state);
/// Reads a vCPU state written at `version`.
[[nodiscard]] Result<kvm::VcpuState> decode_vcpu_state(SectionReader& in, uint32_t version);
/// Writes the VM-wide state at kVmStateVersion.
void encode(SectionWriter& out, const kvm::VmState& state);
/// Reads a VM-wide state written at `version`.
[[nodiscard]] Result<kvm::VmState> decode_vm_state(SectionReader& in, uint32_t version);

/// Byte-wise equality of two vCPU states (padding included: compare decoded
/// states, or states whose padding is zero as KVM returns it).
[[nodiscard]] bool same_state(const kvm::VcpuState& a, const kvm::VcpuState& b);
/// Byte-wise equality of two VM-wide states (same caveat).
[[nodiscard]] bool same_state(const kvm::VmState& a, const kvm::VmState& b);

}  // namespace godwit::migration
