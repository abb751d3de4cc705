// Raw image loading: option parsing, placement checks, boot structures.
#include "vmm/boot/raw_image.h"

#include <vector>

#include "vmm/boot/cpu_state.h"
#include "vmm/boot/gdt.h"
#include "vmm/boot/guest_range.h"
#include "base/number.h"
#include "vmm/boot/page_tables.h"

namespace godwit::boot {
namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

Result<CpuMode> parse_mode(std::string_view text) {
  if (text == "real") return CpuMode::real16;
  if (text == "protected") return CpuMode::protected32;
  if (text == "long") return CpuMode::long64;
  return fail("unknown mode '" + std::string(text) + "' (expected real, protected or long)");
}

// Range the loader writes boot structures to in `mode` (empty in real mode).
std::pair<uint64_t, uint64_t> boot_structures(CpuMode mode) {
  switch (mode) {
    case CpuMode::real16:
      return {0, 0};
    case CpuMode::protected32:
      return {kGdtAddr, kGdtEntries * 8};
    case CpuMode::long64:
      return {kGdtAddr, kRawBootStructuresEnd - kGdtAddr};
  }
  return {0, 0};
}

Result<void> check_entry_reachable(const ImageSpec& spec) {
  const std::string what = "entry " + hex(spec.entry) + " in " + cpu_mode_name(spec.mode) + " mode";
  switch (spec.mode) {
    case CpuMode::real16:
      if (spec.entry >= kMiB) return fail(what + " is not below 1 MiB");
      break;
    case CpuMode::protected32:
      if (spec.entry >= 4 * kGiB) return fail(what + " is not below 4 GiB");
      break;
    case CpuMode::long64:
      if (spec.entry >= kIdentityMapSize)
        return fail(what + " is outside the identity map " + hex_range(0, kIdentityMapSize));
      break;
  }
  return {};
}

}  // namespace

Result<ImageSpec> parse_image_spec(std::string_view text) {
  const std::string context = "--image '" + std::string(text) + "'";
  std::vector<std::string_view> parts = split(text, ',');
  ImageSpec spec;
  spec.path = std::string(parts[0]);
  if (spec.path.empty()) return fail(context + ": missing file name");
  bool have_load = false, have_entry = false, have_mode = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view item = parts[i];
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return fail(context + ": '" + std::string(item) + "' is not KEY=VALUE");
    std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    bool* seen = key == "load"    ? &have_load
                 : key == "entry" ? &have_entry
                 : key == "mode"  ? &have_mode
                                  : nullptr;
    if (!seen)
      return fail(context + ": unknown key '" + std::string(key) +
                  "' (expected load, entry, mode)");
    if (*seen) return fail(context + ": '" + std::string(key) + "' given twice");
    *seen = true;
    if (key == "mode") {
      auto mode = parse_mode(value);
      if (!mode) return fail(mode.error().context(context));
      spec.mode = *mode;
      continue;
    }
    auto number = parse_u64(value);
    if (!number)
      return fail(context + ": " + std::string(key) + "='" + std::string(value) +
                  "' is not a decimal or 0x-hex address");
    (key == "load" ? spec.load : spec.entry) = *number;
  }
  if (have_load && !have_entry) spec.entry = spec.load;
  return spec;
}

Result<BootEntry> load_raw_image(GuestMemory& memory, const ImageSpec& spec) {
  const std::string context = "loading image " + spec.path;
  auto bytes = read_file(spec.path, "image");
  if (!bytes) return fail(bytes.error());
  if (bytes->empty()) return fail(context + ": the file is empty");
  const uint64_t size = bytes->size();

  if (auto fits = check_in_ram(memory, spec.load, size, "image"); !fits)
    return fail(fits.error().context(context));
  auto [structures, structures_size] = boot_structures(spec.mode);
  if (ranges_overlap(spec.load, size, structures, structures_size))
    return fail(context + ": image " + hex_range(spec.load, size) +
                " would overwrite the boot structures " + hex_range(structures, structures_size) +
                " of " + cpu_mode_name(spec.mode) + " mode (load it at or above " +
                hex(structures + structures_size) + ")");
  if (auto reachable = check_entry_reachable(spec); !reachable)
    return fail(reachable.error().context(context));

  if (auto written = memory.write(spec.load, *bytes); !written)
    return fail(written.error().context(context));

  BootEntry entry;
  entry.mode = spec.mode;
  entry.rip = spec.entry;
  entry.rsp = kRawImageStackTop;
  entry.image_base = spec.load;
  entry.image_size = size;
  if (spec.mode != CpuMode::real16) {
    if (auto gdt = write_boot_gdt(memory, spec.mode); !gdt)
      return fail(gdt.error().context(context));
    entry.gdt_base = kGdtAddr;
    entry.gdt_limit = kGdtEntries * 8 - 1;
  }
  if (spec.mode == CpuMode::long64) {
    auto cr3 = write_identity_page_tables(memory);
    if (!cr3) return fail(cr3.error().context(context));
    entry.paging = true;
    entry.cr3 = *cr3;
  }
  return entry;
}

}  // namespace godwit::boot
