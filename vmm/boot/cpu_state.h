// make_initial_cpu_state: turns a BootEntry into the KVM register structs of
// the boot vCPU. Pure: no ioctls; the caller passes the result to
// KVM_SET_SREGS / KVM_SET_REGS.
//
// Modes:
//   real16       CS:IP from the linear entry: CS = (rip >> 4) & 0xf000 (base
//                CS << 4), IP = rip & 0xffff, so 0x7c00 becomes 0000:7C00 as a
//                BIOS would; DS = ES = FS = GS = SS = 0 (limit 64 KiB); CR0 = ET.
//   protected32  flat CS (0x10, 32-bit) and DS/ES/FS/GS/SS (0x18) matching the
//                GDT the loader wrote; CR0 = PE|ET; paging off.
//   long64       flat 64-bit CS (0x10) and data (0x18); CR0 = PE|ET|PG,
//                CR4 = PAE, EFER = LME|LMA, CR3 from the entry.
// In every mode RFLAGS = 0x2 (interrupts off), the IDT is empty outside real
// mode (the guest loads its own), TR/LDTR get KVM's reset values.
//
// Application processors are not touched by the VMM: they stay in KVM's
// reset state (MP_STATE uninitialized / INIT-received wait) until the guest's
// BSP sends INIT/SIPI through its LAPIC, exactly as on hardware.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "kvm/uapi.h"  // <linux/kvm.h> with the C++ flexible-array layout fixed
#include "vmm/boot/boot_entry.h"

namespace godwit::boot {

/// Control-register and EFER bits the boot state uses.
inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;

/// A real-mode CS:IP pair.
struct RealModeAddress {
  uint16_t cs = 0;
  uint16_t ip = 0;
};

/// Splits a linear address below 1 MiB into CS:IP (CS = (a >> 4) & 0xf000).
[[nodiscard]] Result<RealModeAddress> real_mode_address(uint64_t linear);

/// Fills `regs` completely and the segment, descriptor-table and control
/// registers of `sregs` for `entry`; apic_base, cr2, cr8 and the interrupt
/// bitmap of `sregs` are kept, so pass the vCPU's KVM_GET_SREGS result.
/// Fails for inconsistent entries (real-mode rip >= 1 MiB, protected-mode
/// rip >= 4 GiB or paging on, long mode without paging or with a misaligned
/// CR3, a GDT too small for selectors 0x10/0x18).
[[nodiscard]] Result<void> make_initial_cpu_state(const BootEntry& entry, kvm_regs& regs,
                                                  kvm_sregs& sregs);

}  // namespace godwit::boot
