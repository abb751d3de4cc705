// The flat GDT the loaders write for protected- and long-mode entries, and the
// matching KVM segment registers, derived from one definition so the hidden
// segment state KVM loads always equals what the GDT says.
#pragma once

#include <array>
#include <cstdint>

#include "base/result.h"
#include "kvm/uapi.h"  // <linux/kvm.h> with the C++ flexible-array layout fixed
#include "memory/guest_memory.h"
#include "vmm/boot/boot_entry.h"

namespace godwit::boot {

/// Flat 4 GiB code segment at kCodeSelector: 64-bit (L=1) for long mode,
/// 32-bit (D=1) otherwise.
[[nodiscard]] kvm_segment flat_code_segment(CpuMode mode);
/// Flat 4 GiB read/write data segment at kDataSelector.
[[nodiscard]] kvm_segment flat_data_segment();
/// Encodes a KVM segment as an 8-byte GDT descriptor (limit in bytes; the
/// granularity bit decides whether it is stored in 4 KiB units).
[[nodiscard]] uint64_t encode_descriptor(const kvm_segment& segment);
/// The GDT for `mode`: null, null, code (0x10), data (0x18).
[[nodiscard]] std::array<uint64_t, 4> boot_gdt(CpuMode mode);
/// Writes boot_gdt(mode) at kGdtAddr.
[[nodiscard]] Result<void> write_boot_gdt(GuestMemory& memory, CpuMode mode);

}  // namespace godwit::boot
