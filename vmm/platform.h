// The godwit x86 platform: fixed addresses, ports and IRQs that guests see.
// docs/guest-abi.md is the prose version of this file; keep them in step.
#pragma once

#include <cstdint>

namespace godwit::platform {

/// COM1 8250 UART.
inline constexpr uint16_t kSerialPort = 0x3f8;
inline constexpr uint16_t kSerialPortLen = 8;
inline constexpr uint32_t kSerialIrq = 4;
/// i8042 keyboard controller (only reset is implemented).
inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CommandPort = 0x64;
/// Debug-exit port: a byte write stops the VM with that exit status.
inline constexpr uint16_t kDebugExitPort = 0x501;
/// The testdev MMIO page (console byte, exit, platform info), ring-3 reachable.
inline constexpr uint64_t kTestdevBase = 0xd000'0000;
inline constexpr uint64_t kTestdevSize = 0x1000;
/// First virtio-mmio device; each device takes one page.
inline constexpr uint64_t kVirtioMmioBase = 0xd000'1000;
inline constexpr uint64_t kIoapicBase = 0xfec0'0000;
inline constexpr uint64_t kLapicBase = 0xfee0'0000;
/// KVM (VMX) needs three pages for the real-mode TSS and one for the identity
/// map; both sit in the MMIO hole just below the BIOS area.
inline constexpr uint64_t kTssAddr = 0xfffb'd000;
inline constexpr uint64_t kIdentityMapAddr = 0xfffb'c000;

}  // namespace godwit::platform
