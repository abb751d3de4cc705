// The single entry point for kernel boots: detects a bzImage or an ELF kernel
// by content, loads it with its initrd and command line, and writes the MP
// table for `vcpus` processors.
#pragma once

#include <string>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/boot_entry.h"

namespace godwit::boot {

/// What to boot: the kernel file, an optional initrd, the command line.
struct KernelSpec {
  std::string path;
  std::string initrd;  ///< empty: no initrd
  std::string cmdline;
};

/// Loads the kernel; fails with "not a bzImage or ELF kernel: PATH" for
/// anything else, and with the loader's error for a corrupt kernel.
[[nodiscard]] Result<BootEntry> load_kernel(GuestMemory& memory, const KernelSpec& spec,
                                            unsigned vcpus);

}  // namespace godwit::boot
