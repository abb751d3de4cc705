// Command line and initrd placement for kernel boots.
#include "vmm/boot/linux_payload.h"

#include <algorithm>
#include <vector>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/guest_range.h"

namespace godwit::boot {

Result<uint64_t> place_initrd(uint64_t initrd_size, uint64_t kernel_end, uint64_t initrd_addr_max,
                              uint64_t low_ram_end) {
  const uint64_t top = std::min(initrd_addr_max + 1, low_ram_end);
  const std::string what = "placing the initrd (" + std::to_string(initrd_size) + " bytes)";
  if (initrd_size > top || (top - initrd_size) / kPageSize * kPageSize < kernel_end)
    return fail(what + ": no room between the kernel end " + hex(kernel_end) + " and " + hex(top) +
                " (min of the kernel's initrd_addr_max + 1 and the end of low RAM)");
  return (top - initrd_size) / kPageSize * kPageSize;
}

Result<LinuxPayload> write_cmdline_and_initrd(GuestMemory& memory, std::string_view cmdline,
                                              uint64_t cmdline_max, const std::string& initrd_path,
                                              uint64_t kernel_end, uint64_t initrd_addr_max) {
  LinuxPayload payload;
  const uint64_t limit = std::min(cmdline_max, kCmdlineCapacity - 1);
  if (cmdline.find('\0') != std::string_view::npos)
    return fail("kernel command line contains a NUL byte");
  if (cmdline.size() > limit)
    return fail("kernel command line is " + std::to_string(cmdline.size()) +
                " bytes; the kernel accepts at most " + std::to_string(limit));
  std::vector<uint8_t> bytes(cmdline.begin(), cmdline.end());
  bytes.push_back(0);
  if (auto r = memory.write(kCmdlineAddr, bytes); !r)
    return fail(r.error().context("writing the kernel command line at " + hex(kCmdlineAddr)));
  payload.cmdline_addr = kCmdlineAddr;
  payload.cmdline_length = cmdline.size();

  if (initrd_path.empty()) return payload;
  auto initrd = read_file(initrd_path, "initrd");
  if (!initrd) return fail(initrd.error());
  if (initrd->empty()) return fail("initrd " + initrd_path + " is empty");
  auto address = place_initrd(initrd->size(), kernel_end, initrd_addr_max, low_ram_end(memory));
  if (!address) return fail(address.error().context("initrd " + initrd_path));
  if (auto r = memory.write(*address, *initrd); !r)
    return fail(r.error().context("writing initrd " + initrd_path + " at " + hex(*address)));
  payload.initrd_addr = *address;
  payload.initrd_size = initrd->size();
  return payload;
}

}  // namespace godwit::boot
