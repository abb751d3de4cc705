// Raw image loader: --image spec parsing, placement and its errors, the GDT
// and the long-mode identity page tables (walked here like the MMU would).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "test_util.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/gdt.h"
#include "vmm/boot/page_tables.h"
#include "vmm/boot/raw_image.h"

namespace godwit::boot {
namespace {

// A file in a per-test temporary directory, removed at the end.
class TempFile {
 public:
  explicit TempFile(const std::vector<uint8_t>& bytes) {
    char dir[] = "/tmp/godwit-boot-XXXXXX";
    dir_ = ::mkdtemp(dir);
    path_ = dir_ + "/image.bin";
    std::ofstream(path_, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  ~TempFile() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

std::vector<uint8_t> pattern(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  return bytes;
}

TEST(ImageSpec, DefaultsToBootSectorInRealMode) {
  auto spec = parse_image_spec("guest.img");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->path, "guest.img");
  EXPECT_EQ(spec->load, 0x7c00u);
  EXPECT_EQ(spec->entry, 0x7c00u);
  EXPECT_EQ(spec->mode, CpuMode::real16);
}

TEST(ImageSpec, ParsesAllKeysInAnyOrder) {
  auto spec = parse_image_spec("/x/g.bin,mode=long,entry=0x100010,load=1048576");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->load, 0x100000u);
  EXPECT_EQ(spec->entry, 0x100010u);
  EXPECT_EQ(spec->mode, CpuMode::long64);
  EXPECT_EQ(parse_image_spec("g,mode=protected")->mode, CpuMode::protected32);
}

TEST(ImageSpec, EntryDefaultsToLoad) {
  auto spec = parse_image_spec("g.bin,load=0x200000");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->entry, 0x200000u);
}

TEST(ImageSpec, RejectsBadSpecsWithTheReason) {
  struct Case {
    const char* spec;
    const char* message_part;
  };
  for (const Case& c :
       {Case{"", "missing file name"}, Case{",load=0x1000", "missing file name"},
        Case{"g,load", "is not KEY=VALUE"}, Case{"g,size=4", "unknown key 'size'"},
        Case{"g,load=0x1000,load=0x2000", "given twice"},
        Case{"g,load=12k", "not a decimal or 0x-hex"}, Case{"g,entry=0x", "not a decimal"},
        Case{"g,mode=virtual", "unknown mode 'virtual'"}}) {
    auto spec = parse_image_spec(c.spec);
    ASSERT_FALSE(spec) << c.spec;
    EXPECT_NE(spec.error().message.find(c.message_part), std::string::npos)
        << c.spec << " -> " << spec.error().message;
  }
}

TEST(RawImage, LoadsBootSectorAtDefaultAddressInRealMode) {
  auto memory = test::make_guest_memory(16 * kMiB);
  auto bytes = pattern(512);
  TempFile file(bytes);
  auto entry = load_raw_image(*memory, *parse_image_spec(file.path()));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->mode, CpuMode::real16);
  EXPECT_EQ(entry->rip, 0x7c00u);
  EXPECT_FALSE(entry->paging);
  EXPECT_EQ(entry->image_base, 0x7c00u);
  EXPECT_EQ(entry->image_size, 512u);
  std::vector<uint8_t> loaded(512);
  ASSERT_TRUE(memory->read(0x7c00, loaded));
  EXPECT_EQ(loaded, bytes);
  // Real mode writes no boot structures.
  EXPECT_EQ(*memory->read_obj<uint64_t>(kGdtAddr + 16), 0u);
}

TEST(RawImage, LongModeWritesGdtAndIdentityMap) {
  auto memory = test::make_guest_memory(64 * kMiB);
  auto bytes = pattern(8192);
  TempFile file(bytes);
  auto entry = load_raw_image(
      *memory, *parse_image_spec(file.path() + ",load=0x100000,entry=0x100040,mode=long"));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->mode, CpuMode::long64);
  EXPECT_EQ(entry->rip, 0x100040u);
  EXPECT_EQ(entry->rsp, kRawImageStackTop);
  EXPECT_TRUE(entry->paging);
  EXPECT_EQ(entry->cr3, kPml4Addr);
  EXPECT_EQ(entry->gdt_base, kGdtAddr);
  EXPECT_EQ(entry->gdt_limit, 31u);
  std::vector<uint8_t> loaded(bytes.size());
  ASSERT_TRUE(memory->read(0x100000, loaded));
  EXPECT_EQ(loaded, bytes);

  auto gdt = memory->read_obj<std::array<uint64_t, 4>>(kGdtAddr);
  ASSERT_TRUE(gdt);
  EXPECT_EQ((*gdt)[0], 0u);
  EXPECT_EQ((*gdt)[2], 0x00af9b000000ffffull);  // 64-bit code, flat
  EXPECT_EQ((*gdt)[3], 0x00cf93000000ffffull);  // data, flat
}

// Translates `va` through the 4-level tables at `cr3` in guest memory.
std::optional<uint64_t> walk(const GuestMemory& memory, uint64_t cr3, uint64_t va,
                             uint64_t* leaf_flags) {
  constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;
  uint64_t pml4e = *memory.read_obj<uint64_t>(cr3 + ((va >> 39) & 511) * 8);
  if (!(pml4e & kPtePresent)) return std::nullopt;
  uint64_t pdpte = *memory.read_obj<uint64_t>((pml4e & kAddrMask) + ((va >> 30) & 511) * 8);
  if (!(pdpte & kPtePresent)) return std::nullopt;
  EXPECT_FALSE(pdpte & kPteLargePage);
  uint64_t pde = *memory.read_obj<uint64_t>((pdpte & kAddrMask) + ((va >> 21) & 511) * 8);
  if (!(pde & kPtePresent)) return std::nullopt;
  EXPECT_TRUE(pde & kPteLargePage);
  *leaf_flags = pde & 0xfff;
  return (pde & 0x000fffffffe00000ull) + (va & 0x1fffff);
}

TEST(RawImage, IdentityMapCoversFirstFourGiBOnly) {
  auto memory = test::make_guest_memory(16 * kMiB);
  auto cr3 = write_identity_page_tables(*memory);
  ASSERT_TRUE(cr3);
  for (uint64_t va : {0x0ull, 0x7c00ull, 0x100000ull, 0x12345678ull, 0xbfffffffull, 0xd0000000ull,
                      0xfee00000ull, 0xffffffffull}) {
    uint64_t flags = 0;
    auto pa = walk(*memory, *cr3, va, &flags);
    ASSERT_TRUE(pa) << std::hex << va;
    EXPECT_EQ(*pa, va);
    EXPECT_TRUE(flags & kPteWritable);
    // The MMIO hole is uncached, RAM below it is not.
    EXPECT_EQ((flags & kPteCacheDisable) != 0, va >= kLowRamEnd) << std::hex << va;
  }
  uint64_t flags = 0;
  EXPECT_FALSE(walk(*memory, *cr3, 4 * kGiB, &flags));
}

TEST(RawImage, ProtectedModeWritesOnlyA32BitGdt) {
  auto memory = test::make_guest_memory(16 * kMiB);
  TempFile file(pattern(100));
  auto entry =
      load_raw_image(*memory, *parse_image_spec(file.path() + ",load=0x1000,mode=protected"));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_FALSE(entry->paging);
  EXPECT_EQ(*memory->read_obj<uint64_t>(kGdtAddr + 16), 0x00cf9b000000ffffull);  // 32-bit code
  // The image at 0x1000 is where long mode would put its PML4: left alone here.
  EXPECT_EQ(*memory->read_obj<uint8_t>(0x1000), pattern(1)[0]);
}

void expect_load_error(GuestMemory& memory, const std::string& spec_suffix, size_t size,
                       const std::string& message_part) {
  TempFile file(pattern(size));
  auto entry = load_raw_image(memory, *parse_image_spec(file.path() + spec_suffix));
  ASSERT_FALSE(entry) << spec_suffix;
  EXPECT_NE(entry.error().message.find(message_part), std::string::npos)
      << spec_suffix << " -> " << entry.error().message;
}

TEST(RawImage, RejectsMissingAndEmptyFiles) {
  auto memory = test::make_guest_memory(16 * kMiB);
  auto missing = load_raw_image(*memory, *parse_image_spec("/nonexistent/godwit.img"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/godwit.img"), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);
  expect_load_error(*memory, "", 0, "is empty");
}

TEST(RawImage, RejectsImagesOutsideRam) {
  auto memory = test::make_guest_memory(1 * kMiB);
  expect_load_error(*memory, ",load=0xff000", 8192, "does not fit in guest RAM");
  expect_load_error(*memory, ",load=0x200000", 16, "does not fit in guest RAM");
}

TEST(RawImage, RejectsImagesOverlappingTheMmioHole) {
  auto memory = test::make_guest_memory(3 * kGiB + 64 * kMiB);
  expect_load_error(*memory, ",load=0xbffff000,mode=protected", 8192, "overlaps the MMIO hole");
  expect_load_error(*memory, ",load=0xd0000000,mode=protected", 16, "overlaps the MMIO hole");
}

TEST(RawImage, RejectsImagesOverwritingBootStructures) {
  auto memory = test::make_guest_memory(16 * kMiB);
  expect_load_error(*memory, ",load=0x6000,mode=long", 4096, "would overwrite the boot structures");
  expect_load_error(*memory, ",load=0x400,mode=protected", 512,
                    "would overwrite the boot structures");
  // A long-mode boot sector at 0x7c00 does not touch them.
  TempFile file(pattern(512));
  EXPECT_TRUE(load_raw_image(*memory, *parse_image_spec(file.path() + ",mode=long")));
}

TEST(RawImage, RejectsEntriesTheModeCannotReach) {
  auto memory = test::make_guest_memory(3 * kGiB + 2 * kGiB);
  expect_load_error(*memory, ",load=0x100000", 16, "not below 1 MiB");
  expect_load_error(*memory, ",load=0x100000000,mode=long", 16, "outside the identity map");
}

}  // namespace
}  // namespace godwit::boot
