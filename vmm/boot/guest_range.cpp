// Loader helpers: file reading, guest-range checks, address formatting.
#include "vmm/boot/guest_range.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/unique_fd.h"

namespace godwit::boot {

std::string hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string hex_range(uint64_t start, uint64_t size) {
  return "[" + hex(start) + ", " + hex(start + size) + ")";
}

bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  if (alen == 0 || blen == 0) return false;
  return a < b + blen && b < a + alen;
}

Result<std::vector<uint8_t>> read_file(const std::string& path, std::string_view what) {
  const std::string context = "reading " + std::string(what) + " " + path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(context);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno(context);
  if (!S_ISREG(st.st_mode)) return fail(context + ": not a regular file");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(context);
    if (n == 0) return fail(context + ": file shrank while reading");
    done += static_cast<size_t>(n);
  }
  return bytes;
}

Result<void> check_in_ram(const GuestMemory& memory, uint64_t gpa, uint64_t size,
                          std::string_view what) {
  if (size == 0) return {};
  const std::string name(what);
  if (gpa + size < gpa)
    return fail(name + " at " + hex(gpa) + " of size " + hex(size) +
                " wraps around the address space");
  for (const MemoryRegion& region : memory.regions())
    if (region.contains(gpa, size)) return {};

  std::string ram;
  for (const MemoryRegion& region : memory.regions())
    ram += (ram.empty() ? "" : ", ") + hex_range(region.gpa, region.size);
  const std::string range = name + " " + hex_range(gpa, size);
  if (ranges_overlap(gpa, size, kLowRamEnd, kHighRamStart - kLowRamEnd) &&
      memory.total_size() > kLowRamEnd)
    return fail(range + " overlaps the MMIO hole " +
                hex_range(kLowRamEnd, kHighRamStart - kLowRamEnd) + " (RAM: " + ram + ")");
  return fail(range + " does not fit in guest RAM (RAM: " + ram + ")");
}

uint64_t low_ram_end(const GuestMemory& memory) {
  for (const MemoryRegion& region : memory.regions())
    if (region.gpa == 0) return region.size;
  return 0;
}

}  // namespace godwit::boot
