// BootEntry: the state the boot vCPU starts in, as decided by a loader. It is
// a plain value; cpu_state.h turns it into KVM register structs.
#pragma once

#include <cstdint>

namespace godwit::boot {

/// The CPU mode the boot vCPU starts in.
enum class CpuMode {
  real16,       ///< real mode, CS:IP derived from rip (see cpu_state.h)
  protected32,  ///< 32-bit protected mode, flat segments, paging off
  long64,       ///< 64-bit long mode, flat segments, paging on (identity map)
};

/// Human-readable mode name ("real", "protected", "long").
[[nodiscard]] const char* cpu_mode_name(CpuMode mode);

/// Initial state of the boot vCPU (vCPU 0). Application processors are not
/// described here: they wait for INIT/SIPI in KVM's reset state.
struct BootEntry {
  CpuMode mode = CpuMode::real16;
  uint64_t rip = 0;         ///< linear entry address (real mode: split into CS:IP)
  uint64_t rsp = 0;         ///< initial stack pointer
  uint64_t rsi = 0;         ///< Linux boot protocol: address of the zero page
  uint64_t rbx = 0;         ///< PVH: address of hvm_start_info
  bool paging = false;      ///< CR0.PG (only in long mode)
  uint64_t cr3 = 0;         ///< page-table root when paging is on
  uint64_t gdt_base = 0;    ///< GDT written by the loader (protected/long mode)
  uint16_t gdt_limit = 0;   ///< GDT limit (size - 1)
  uint64_t image_base = 0;  ///< where the loaded image starts (guest-param patching)
  uint64_t image_size = 0;  ///< its size in guest memory
};

}  // namespace godwit::boot
