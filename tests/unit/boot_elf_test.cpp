// ELF kernel loader: ELF64 with the Linux 64-bit entry, ELF32 with a PVH note
// (start_info, memory map, command line, initrd module), and corrupt files.
#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "test_util.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/boot_params.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/elf.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/boot/pvh.h"

namespace godwit::boot {
namespace {

class TempDir {
 public:
  TempDir() {
    char dir[] = "/tmp/godwit-elf-XXXXXX";
    dir_ = ::mkdtemp(dir);
  }
  ~TempDir() {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    files_.push_back(path);
    return path;
  }

 private:
  std::string dir_;
  std::vector<std::string> files_;
};

struct Segment {
  uint32_t type = PT_LOAD;
  uint64_t paddr = 0;
  std::vector<uint8_t> data;
  uint64_t memsz = 0;  // 0: data.size()
};

template <typename T>
void put(std::vector<uint8_t>& out, uint64_t offset, const T& value) {
  if (out.size() < offset + sizeof(T)) out.resize(offset + sizeof(T));
  std::memcpy(out.data() + offset, &value, sizeof(T));
}

// Builds a minimal ELF file: header, program headers, then segment data.
template <typename Ehdr, typename Phdr>
std::vector<uint8_t> build_elf(const std::vector<Segment>& segments, uint64_t entry,
                               uint8_t elf_class, uint16_t machine) {
  std::vector<uint8_t> out;
  Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Ehdr);
  eh.e_ehsize = sizeof(Ehdr);
  eh.e_phentsize = sizeof(Phdr);
  eh.e_phnum = static_cast<uint16_t>(segments.size());
  put(out, 0, eh);
  uint64_t data_at = sizeof(Ehdr) + segments.size() * sizeof(Phdr);
  for (size_t i = 0; i < segments.size(); ++i) {
    const Segment& s = segments[i];
    Phdr ph{};
    ph.p_type = s.type;
    ph.p_offset = data_at;
    ph.p_paddr = s.paddr;
    ph.p_vaddr = s.paddr + 0xffffffff80000000ull;
    ph.p_filesz = s.data.size();
    ph.p_memsz = s.memsz ? s.memsz : s.data.size();
    put(out, sizeof(Ehdr) + i * sizeof(Phdr), ph);
    out.resize(data_at);
    out.insert(out.end(), s.data.begin(), s.data.end());
    data_at = out.size();
  }
  return out;
}

std::vector<uint8_t> elf64(const std::vector<Segment>& segments, uint64_t entry) {
  return build_elf<Elf64_Ehdr, Elf64_Phdr>(segments, entry, ELFCLASS64, EM_X86_64);
}
std::vector<uint8_t> elf32(const std::vector<Segment>& segments, uint64_t entry) {
  return build_elf<Elf32_Ehdr, Elf32_Phdr>(segments, entry, ELFCLASS32, EM_386);
}

std::vector<uint8_t> code(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(0x90 + i);
  return bytes;
}

// A PT_NOTE payload: an unrelated note first, then the Xen PVH entry note.
std::vector<uint8_t> pvh_note(uint64_t entry, uint32_t descsz) {
  std::vector<uint8_t> note;
  auto add = [&](const char* name, uint32_t namesz, uint32_t type, const void* desc,
                 uint32_t size) {
    uint64_t at = note.size();
    put(note, at, namesz);
    put(note, at + 4, size);
    put(note, at + 8, type);
    note.resize(at + 12 + ((namesz + 3) & ~3u), 0);
    std::memcpy(note.data() + at + 12, name, namesz);
    uint64_t desc_at = note.size();
    note.resize(desc_at + ((size + 3) & ~3u), 0);
    std::memcpy(note.data() + desc_at, desc, size);
  };
  const uint32_t build_id = 0x12345678;
  add("GNU", 4, 3, &build_id, 4);
  add("Xen", 4, kXenElfnotePhys32Entry, &entry, descsz);
  return note;
}

std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
  std::vector<uint8_t> out(size);
  EXPECT_TRUE(memory.read(gpa, out));
  return out;
}

std::string read_cstring(const GuestMemory& memory, uint64_t gpa) {
  std::string s;
  for (char c; (c = static_cast<char>(*memory.read_obj<uint8_t>(gpa + s.size()))) != 0;) s += c;
  return s;
}

TEST(ElfLoader, Elf64EntersLongModeWithZeroPage) {
  auto memory = test::make_guest_memory(64 * kMiB);
  TempDir dir;
  auto text = code(0x300);
  auto data = code(0x40);
  std::string path = dir.write(
      "vmlinux",
      elf64({{PT_LOAD, 0x1000000, text, 0x2000}, {PT_LOAD, 0x1200000, data, 0}}, 0x1000010));
  // Dirty the bss range first: the loader must zero-fill it.
  std::vector<uint8_t> junk(0x2000, 0xee);
  ASSERT_TRUE(memory->write(0x1000000, junk));

  auto entry = load_kernel(*memory, {path, "", "console=ttyS0 quiet"}, 1);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->mode, CpuMode::long64);
  EXPECT_EQ(entry->rip, 0x1000010u);
  EXPECT_EQ(entry->rsi, kZeroPageAddr);
  EXPECT_TRUE(entry->paging);
  EXPECT_EQ(read_guest(*memory, 0x1000000, text.size()), text);
  EXPECT_EQ(read_guest(*memory, 0x1000000 + text.size(), 0x2000 - text.size()),
            std::vector<uint8_t>(0x2000 - text.size(), 0));
  EXPECT_EQ(read_guest(*memory, 0x1200000, data.size()), data);

  auto params = memory->read_obj<BootParams>(kZeroPageAddr);
  ASSERT_TRUE(params);
  EXPECT_EQ(params->hdr.header, kSetupHeaderMagic);
  EXPECT_EQ(params->hdr.boot_flag, kBootFlag);
  EXPECT_EQ(params->hdr.type_of_loader, kLoaderUndefined);
  EXPECT_EQ(read_cstring(*memory, params->hdr.cmd_line_ptr), "console=ttyS0 quiet");
  EXPECT_EQ(params->e820_entries, e820_map(*memory).size());
}

TEST(ElfLoader, Elf32WithPvhNoteBootsThroughStartInfo) {
  auto memory = test::make_guest_memory(256 * kMiB);
  TempDir dir;
  auto text = code(0x200);
  std::string path = dir.write(
      "pvh.elf",
      elf32({{PT_NOTE, 0, pvh_note(0x1000040, 4), 0}, {PT_LOAD, 0x1000000, text, 0}}, 0xdead));
  std::vector<uint8_t> initrd(10000, 0x5a);
  std::string initrd_path = dir.write("initrd", initrd);

  auto entry = load_kernel(*memory, {path, initrd_path, "root=/dev/vda"}, 2);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->mode, CpuMode::protected32);
  EXPECT_FALSE(entry->paging);
  EXPECT_EQ(entry->rip, 0x1000040u);
  EXPECT_EQ(entry->rbx, kPvhStartInfoAddr);
  EXPECT_EQ(read_guest(*memory, 0x1000000, text.size()), text);

  auto info = memory->read_obj<HvmStartInfo>(kPvhStartInfoAddr);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->magic, kHvmStartMagic);
  EXPECT_EQ(info->version, 1u);
  EXPECT_EQ(read_cstring(*memory, info->cmdline_paddr), "root=/dev/vda");
  ASSERT_EQ(info->nr_modules, 1u);
  auto module = memory->read_obj<HvmModlistEntry>(info->modlist_paddr);
  ASSERT_TRUE(module);
  EXPECT_EQ(module->size, initrd.size());
  EXPECT_EQ(module->paddr % kPageSize, 0u);
  EXPECT_EQ(read_guest(*memory, module->paddr, initrd.size()), initrd);

  auto expected_map = e820_map(*memory);
  ASSERT_EQ(info->memmap_entries, expected_map.size());
  for (size_t i = 0; i < expected_map.size(); ++i) {
    auto e = memory->read_obj<HvmMemmapEntry>(info->memmap_paddr + i * sizeof(HvmMemmapEntry));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->addr, expected_map[i].addr);
    EXPECT_EQ(e->size, expected_map[i].size);
    EXPECT_EQ(e->type, expected_map[i].type);
  }
}

TEST(ElfLoader, Elf64PvhNoteWithEightByteDescriptorWins) {
  auto memory = test::make_guest_memory(64 * kMiB);
  TempDir dir;
  std::string path = dir.write("vmlinux", elf64({{PT_LOAD, 0x1000000, code(0x100), 0},
                                                 {PT_NOTE, 0, pvh_note(0x1000080, 8), 0}},
                                                0x1000000));
  auto entry = load_kernel(*memory, {path, "", ""}, 1);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->mode, CpuMode::protected32);
  EXPECT_EQ(entry->rip, 0x1000080u);
}

void expect_rejected(const std::vector<uint8_t>& file, const std::string& message_part,
                     uint64_t ram = 64 * kMiB) {
  auto memory = test::make_guest_memory(ram);
  TempDir dir;
  std::string path = dir.write("bad.elf", file);
  auto entry = load_kernel(*memory, {path, "", ""}, 1);
  ASSERT_FALSE(entry) << "expected: " << message_part;
  EXPECT_NE(entry.error().message.find(message_part), std::string::npos) << entry.error().message;
  EXPECT_NE(entry.error().message.find(path), std::string::npos) << entry.error().message;
}

TEST(ElfLoader, RejectsTruncatedHeaders) {
  auto good = elf64({{PT_LOAD, 0x1000000, code(0x100), 0}}, 0x1000000);
  expect_rejected({good.begin(), good.begin() + 40}, "too short for the ELF header");
  expect_rejected({good.begin(), good.begin() + sizeof(Elf64_Ehdr) + 20}, "program headers at");
}

TEST(ElfLoader, RejectsSegmentsOutsideTheFile) {
  auto file = elf64({{PT_LOAD, 0x1000000, code(0x100), 0}}, 0x1000000);
  file.resize(file.size() - 0x10);  // cut the segment data short
  expect_rejected(file, "runs past the end");
}

TEST(ElfLoader, RejectsFileSizeAboveMemorySize) {
  auto file = elf64({{PT_LOAD, 0x1000000, code(0x100), 0}}, 0x1000000);
  Elf64_Phdr ph;
  std::memcpy(&ph, file.data() + sizeof(Elf64_Ehdr), sizeof ph);
  ph.p_memsz = 0x80;
  std::memcpy(file.data() + sizeof(Elf64_Ehdr), &ph, sizeof ph);
  expect_rejected(file, "exceeds p_memsz");
}

TEST(ElfLoader, RejectsBadPlacement) {
  expect_rejected(elf64({{PT_LOAD, 0x10000, code(0x100), 0}}, 0x10000), "below 1 MiB");
  expect_rejected(elf64({{PT_LOAD, 0x1000000, code(0x100), 0x8000000}}, 0x1000000),
                  "does not fit in guest RAM");
  expect_rejected(
      elf64({{PT_LOAD, 0x1000000, code(0x100), 0x2000}, {PT_LOAD, 0x1001000, code(4), 0}},
            0x1000000),
      "overlap");
  expect_rejected(elf64({{PT_LOAD, 0x1000000, code(0x100), 0}}, 0x2000000),
                  "outside every loadable segment");
}

TEST(ElfLoader, RejectsBrokenNotesAndForeignMachines) {
  auto note = pvh_note(0x1000000, 4);
  note.resize(note.size() - 4);  // the last descriptor is cut off
  expect_rejected(elf32({{PT_LOAD, 0x1000000, code(0x10), 0}, {PT_NOTE, 0, note, 0}}, 0x1000000),
                  "runs past its end");
  auto arm = build_elf<Elf64_Ehdr, Elf64_Phdr>({{PT_LOAD, 0x1000000, code(0x10), 0}}, 0x1000000,
                                               ELFCLASS64, EM_AARCH64);
  expect_rejected(arm, "is not x86");
}

TEST(KernelLoader, RejectsFilesThatAreNeitherBzImageNorElf) {
  auto memory = test::make_guest_memory(16 * kMiB);
  TempDir dir;
  std::string path = dir.write("kernel.txt", std::vector<uint8_t>(4096, 'k'));
  auto entry = load_kernel(*memory, {path, "", ""}, 1);
  ASSERT_FALSE(entry);
  EXPECT_EQ(entry.error().message, "not a bzImage or ELF kernel: " + path);
  auto missing = load_kernel(*memory, {"/nonexistent/vmlinuz", "", ""}, 1);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/vmlinuz"), std::string::npos);
}

}  // namespace
}  // namespace godwit::boot
