// ELF kernel parsing (ELF32/ELF64, PVH note) and loading.
#include "vmm/boot/elf.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/boot_params.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/gdt.h"
#include "vmm/boot/guest_range.h"
#include "vmm/boot/linux_payload.h"
#include "vmm/boot/page_tables.h"
#include "vmm/boot/pvh.h"

namespace godwit::boot {
namespace {

template <typename T>
T read_at(std::span<const uint8_t> file, uint64_t offset) {
  T value;
  std::memcpy(&value, file.data() + offset, sizeof(T));
  return value;
}

bool in_file(std::span<const uint8_t> file, uint64_t offset, uint64_t size) {
  return offset <= file.size() && size <= file.size() - offset;
}

uint64_t align4(uint64_t n) { return (n + 3) & ~uint64_t{3}; }

// Walks the notes of one PT_NOTE segment; sets `pvh_entry` if the PVH note is there.
Result<void> scan_notes(std::span<const uint8_t> notes, std::optional<uint64_t>& pvh_entry) {
  uint64_t at = 0;
  while (notes.size() - at >= 12) {
    uint32_t namesz = read_at<uint32_t>(notes, at);
    uint32_t descsz = read_at<uint32_t>(notes, at + 4);
    uint32_t type = read_at<uint32_t>(notes, at + 8);
    uint64_t name_at = at + 12;
    uint64_t desc_at = name_at + align4(namesz);
    uint64_t next = desc_at + align4(descsz);
    if (next > notes.size())
      return fail("note at offset " + hex(at) + " of a PT_NOTE segment runs past its end");
    bool is_xen = namesz == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0;
    if (is_xen && type == kXenElfnotePhys32Entry) {
      uint64_t address = 0;
      if (descsz == 4)
        address = read_at<uint32_t>(notes, desc_at);
      else if (descsz == 8)
        address = read_at<uint64_t>(notes, desc_at);
      else
        return fail("PVH entry note has a " + std::to_string(descsz) +
                    "-byte descriptor (4 or 8 expected)");
      if (address > 0xffffffff) return fail("PVH entry " + hex(address) + " is not below 4 GiB");
      pvh_entry = address;
    }
    at = next;
  }
  return {};
}

template <typename Ehdr, typename Phdr>
Result<ElfKernel> parse_class(std::span<const uint8_t> file, uint16_t machine) {
  if (file.size() < sizeof(Ehdr))
    return fail("truncated: " + std::to_string(file.size()) +
                " bytes is too short for the ELF header");
  auto eh = read_at<Ehdr>(file, 0);
  if (eh.e_machine != machine)
    return fail("machine " + std::to_string(eh.e_machine) + " is not x86 (expected " +
                std::to_string(machine) + " for this ELF class)");
  if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
    return fail("ELF type " + std::to_string(eh.e_type) + " is not an executable");
  if (eh.e_phnum == 0) return fail("no program headers");
  if (eh.e_phentsize != sizeof(Phdr))
    return fail("program header size " + std::to_string(eh.e_phentsize) + " (expected " +
                std::to_string(sizeof(Phdr)) + ")");
  if (!in_file(file, eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Phdr)))
    return fail("program headers at " + hex(eh.e_phoff) + " (" + std::to_string(eh.e_phnum) +
                " entries) run past the end of the " + std::to_string(file.size()) + "-byte file");

  ElfKernel kernel;
  kernel.is64 = sizeof(Ehdr) == sizeof(Elf64_Ehdr);
  kernel.entry = eh.e_entry;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    auto ph = read_at<Phdr>(file, eh.e_phoff + uint64_t{i} * sizeof(Phdr));
    const std::string what = "program header " + std::to_string(i);
    if (!in_file(file, ph.p_offset, ph.p_filesz))
      return fail(what + ": file range " + hex_range(ph.p_offset, ph.p_filesz) +
                  " runs past the end of the " + std::to_string(file.size()) + "-byte file");
    if (ph.p_type == PT_NOTE) {
      auto notes = scan_notes(file.subspan(ph.p_offset, ph.p_filesz), kernel.pvh_entry);
      if (!notes) return fail(notes.error().context(what));
      continue;
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz)
      return fail(what + ": p_filesz " + hex(ph.p_filesz) + " exceeds p_memsz " + hex(ph.p_memsz));
    if (uint64_t{ph.p_paddr} + ph.p_memsz < ph.p_paddr)
      return fail(what + ": segment at " + hex(ph.p_paddr) + " wraps around");
    kernel.segments.push_back({ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
  }
  if (kernel.segments.empty()) return fail("no loadable (PT_LOAD) segments");
  for (size_t a = 0; a < kernel.segments.size(); ++a) {
    const ElfSegment& s = kernel.segments[a];
    kernel.end = std::max(kernel.end, s.paddr + s.memsz);
    for (size_t b = a + 1; b < kernel.segments.size(); ++b) {
      const ElfSegment& t = kernel.segments[b];
      if (ranges_overlap(s.paddr, s.memsz, t.paddr, t.memsz))
        return fail("loadable segments " + hex_range(s.paddr, s.memsz) + " and " +
                    hex_range(t.paddr, t.memsz) + " overlap");
    }
  }
  uint64_t entry = kernel.pvh_entry.value_or(kernel.entry);
  bool entry_loaded = std::any_of(
      kernel.segments.begin(), kernel.segments.end(),
      [&](const ElfSegment& s) { return entry >= s.paddr && entry - s.paddr < s.memsz; });
  if (!entry_loaded)
    return fail(std::string(kernel.pvh_entry ? "PVH entry " : "entry ") + hex(entry) +
                " is outside every loadable segment");
  return kernel;
}

Result<void> load_segments(GuestMemory& memory, std::span<const uint8_t> file,
                           const ElfKernel& kernel) {
  static const std::vector<uint8_t> zeros(64 * 1024);
  for (const ElfSegment& s : kernel.segments) {
    const std::string what = "segment " + hex_range(s.paddr, s.memsz);
    if (s.paddr < kKernelLoadAddr) return fail(what + " overlaps the boot structures below 1 MiB");
    TRY_VOID(check_in_ram(memory, s.paddr, s.memsz, what));
    if (auto r = memory.write(s.paddr, file.subspan(s.offset, s.filesz)); !r)
      return fail(r.error().context("writing " + what));
    for (uint64_t at = s.filesz; at < s.memsz;) {
      uint64_t n = std::min<uint64_t>(zeros.size(), s.memsz - at);
      if (auto r = memory.write(s.paddr + at, std::span(zeros).first(n)); !r)
        return fail(r.error().context("zero-filling " + what));
      at += n;
    }
  }
  return {};
}

}  // namespace

bool looks_like_elf(std::span<const uint8_t> file) {
  return file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0;
}

Result<ElfKernel> parse_elf_kernel(std::span<const uint8_t> file) {
  if (!looks_like_elf(file)) return fail("no ELF magic");
  if (file.size() < EI_NIDENT)
    return fail("truncated: " + std::to_string(file.size()) +
                " bytes is too short for the ELF ident");
  if (file[EI_DATA] != ELFDATA2LSB) return fail("not a little-endian ELF file");
  if (file[EI_VERSION] != EV_CURRENT)
    return fail("unknown ELF version " + std::to_string(file[EI_VERSION]));
  switch (file[EI_CLASS]) {
    case ELFCLASS64:
      return parse_class<Elf64_Ehdr, Elf64_Phdr>(file, EM_X86_64);
    case ELFCLASS32:
      return parse_class<Elf32_Ehdr, Elf32_Phdr>(file, EM_386);
    default:
      return fail("unknown ELF class " + std::to_string(file[EI_CLASS]));
  }
}

Result<BootEntry> load_elf(GuestMemory& memory, std::span<const uint8_t> file,
                           const std::string& path, std::string_view cmdline,
                           const std::string& initrd_path) {
  const std::string context = "loading ELF kernel " + path;
  auto parsed = parse_elf_kernel(file);
  if (!parsed) return fail(parsed.error().context(context));
  const ElfKernel& kernel = *parsed;
  if (auto r = load_segments(memory, file, kernel); !r) return fail(r.error().context(context));

  const SetupHeader header = synthesized_setup_header();
  const bool pvh = kernel.pvh_entry.has_value();
  auto payload =
      write_cmdline_and_initrd(memory, cmdline, pvh ? kCmdlineCapacity - 1 : header.cmdline_size,
                               initrd_path, kernel.end, pvh ? 0xffffffff : header.initrd_addr_max);
  if (!payload) return fail(payload.error().context(context));

  BootEntry entry;
  entry.rsp = kKernelStackTop;
  entry.gdt_base = kGdtAddr;
  entry.gdt_limit = kGdtEntries * 8 - 1;
  uint64_t lowest = kernel.end;
  for (const ElfSegment& s : kernel.segments) lowest = std::min(lowest, s.paddr);
  entry.image_base = lowest;
  entry.image_size = kernel.end - lowest;
  if (pvh) {
    auto start_info = write_pvh_start_info(memory, *payload, e820_map(memory));
    if (!start_info) return fail(start_info.error().context(context));
    entry.mode = CpuMode::protected32;
    entry.rip = *kernel.pvh_entry;
    entry.rbx = *start_info;
  } else {
    LinuxBootInputs inputs{.cmdline_addr = payload->cmdline_addr,
                           .initrd_addr = payload->initrd_addr,
                           .initrd_size = payload->initrd_size,
                           .kernel_addr = lowest};
    auto params = make_boot_params(header, inputs, e820_map(memory));
    if (!params) return fail(params.error().context(context));
    if (auto r = memory.write_obj(kZeroPageAddr, *params); !r)
      return fail(r.error().context(context));
    entry.mode = kernel.is64 ? CpuMode::long64 : CpuMode::protected32;
    entry.rip = kernel.entry;
    entry.rsi = kZeroPageAddr;
    if (entry.rip >= (kernel.is64 ? kIdentityMapSize : 4 * kGiB))
      return fail(context + ": entry " + hex(entry.rip) + " is not identity-mapped (below " +
                  hex(kernel.is64 ? kIdentityMapSize : 4 * kGiB) + ")");
  }
  if (entry.mode == CpuMode::long64) {
    auto cr3 = write_identity_page_tables(memory);
    if (!cr3) return fail(cr3.error().context(context));
    entry.paging = true;
    entry.cr3 = *cr3;
  }
  if (auto r = write_boot_gdt(memory, entry.mode); !r) return fail(r.error().context(context));
  return entry;
}

}  // namespace godwit::boot
