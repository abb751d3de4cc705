// Copying the DTB into guest memory and wrapping it as Linux setup_data.
#include "vmm/fdt/fdt_delivery.h"

#include <libfdt.h>

#include <cstring>
#include <limits>

#include "vmm/fdt/fdt_layout.h"
#include "vmm/fdt/hex_text.h"

namespace godwit::fdt {

Result<void> check_blob(std::span<const uint8_t> blob) {
  if (blob.size() < sizeof(struct fdt_header))
    return fail("checking the FDT: " + std::to_string(blob.size()) +
                " bytes are too few for an FDT header");
  if (int rc = fdt_check_header(blob.data()); rc != 0)
    return fail(std::string("checking the FDT: bad header: ") + fdt_strerror(rc));
  if (fdt_totalsize(blob.data()) != blob.size())
    return fail("checking the FDT: header totalsize " + std::to_string(fdt_totalsize(blob.data())) +
                " but the blob has " + std::to_string(blob.size()) + " bytes");
  return {};
}

Result<void> write_fdt(GuestMemory& memory, uint64_t gpa, std::span<const uint8_t> blob) {
  std::string what = "writing the FDT (" + std::to_string(blob.size()) + " bytes) at " + hex(gpa);
  if (blob.size() > kFdtMaxSize)
    return fail(what + ": larger than the " + std::to_string(kFdtMaxSize) +
                " bytes reserved for it at " + hex(kFdtAddr));
  if (gpa % 8 != 0) return fail(what + ": the address is not 8-byte aligned");
  if (auto valid = check_blob(blob); !valid) return fail(valid.error().context(what));
  if (auto written = memory.write(gpa, blob); !written) return fail(written.error().context(what));
  return {};
}

Result<std::vector<uint8_t>> setup_dtb_entry(std::span<const uint8_t> dtb, uint64_t next) {
  if (auto valid = check_blob(dtb); !valid)
    return fail(valid.error().context("building the SETUP_DTB entry"));
  if (dtb.size() > std::numeric_limits<uint32_t>::max())
    return fail("building the SETUP_DTB entry: " + std::to_string(dtb.size()) +
                " bytes do not fit setup_data.len");
  SetupDataHeader header{.next = next, .type = kSetupDtb, .len = static_cast<uint32_t>(dtb.size())};
  std::vector<uint8_t> entry(sizeof header + dtb.size());
  std::memcpy(entry.data(), &header, sizeof header);  // x86 is little-endian, as Linux expects
  std::memcpy(entry.data() + sizeof header, dtb.data(), dtb.size());
  return entry;
}

}  // namespace godwit::fdt
