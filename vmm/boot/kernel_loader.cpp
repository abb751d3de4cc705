// Kernel format detection and dispatch to the bzImage and ELF loaders.
#include "vmm/boot/kernel_loader.h"

#include "vmm/boot/bzimage.h"
#include "vmm/boot/elf.h"
#include "vmm/boot/guest_range.h"
#include "vmm/boot/mptable.h"

namespace godwit::boot {

Result<BootEntry> load_kernel(GuestMemory& memory, const KernelSpec& spec, unsigned vcpus) {
  auto file = read_file(spec.path, "kernel");
  if (!file) return fail(file.error());
  Result<BootEntry> entry;
  if (looks_like_elf(*file))
    entry = load_elf(memory, *file, spec.path, spec.cmdline, spec.initrd);
  else if (looks_like_bzimage(*file))
    entry = load_bzimage(memory, *file, spec.path, spec.cmdline, spec.initrd);
  else
    return fail("not a bzImage or ELF kernel: " + spec.path);
  if (!entry) return entry;
  if (auto r = write_mp_table(memory, vcpus); !r)
    return fail(r.error().context("loading kernel " + spec.path));
  return entry;
}

}  // namespace godwit::boot
