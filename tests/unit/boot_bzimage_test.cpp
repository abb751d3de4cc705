// bzImage loader: a real Debian kernel (fetched lazily with apt by
// tests/fetch_kernel.sh into the build tree, skipped when apt cannot reach a
// mirror) and small synthetic bzImages for the error paths.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "debian_kernel.h"
#include "memory/guest_memory.h"
#include "test_util.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/boot_params.h"
#include "vmm/boot/bzimage.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/kernel_loader.h"

namespace godwit::boot {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string write_temp(const std::string& name, const std::vector<uint8_t>& bytes) {
  std::string path = test::build_path("test-data/tmp-" + std::to_string(::getpid()) + "-" + name);
  ::mkdir(test::build_path("test-data").c_str(), 0755);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

std::string read_cstring(const GuestMemory& memory, uint64_t gpa) {
  std::string s;
  for (char c; (c = static_cast<char>(*memory.read_obj<uint8_t>(gpa + s.size()))) != 0;) s += c;
  return s;
}

std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
  std::vector<uint8_t> out(size);
  EXPECT_TRUE(memory.read(gpa, out));
  return out;
}

SetupHeader header_of(const std::vector<uint8_t>& file) {
  SetupHeader h{};
  std::memcpy(&h, file.data() + kSetupHeaderOffset, sizeof h);
  return h;
}

std::vector<E820Range> zero_page_e820(const BootParams& params) {
  std::vector<E820Range> out;
  for (size_t i = 0; i < params.e820_entries; ++i)
    out.push_back(
        {params.e820_table[i].addr, params.e820_table[i].size, params.e820_table[i].type});
  return out;
}

TEST(BzImage, LoadsDebianKernelWithInitrdAndCmdline) {
  REQUIRE_DEBIAN_KERNEL(path);
  auto file = read_bytes(path);
  SetupHeader file_header = header_of(file);
  auto memory = test::make_guest_memory(512 * kMiB);
  std::vector<uint8_t> initrd(3 * kMiB + 123);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i * 13);
  std::string initrd_path = write_temp("initrd", initrd);
  const std::string cmdline = "console=ttyS0 reboot=k panic=1 root=/dev/vda";

  auto entry = load_kernel(*memory, {path, initrd_path, cmdline}, 2);
  ::unlink(initrd_path.c_str());
  ASSERT_TRUE(entry) << entry.error().message;

  // Relocatable kernel, pref_address fits in 512 MiB: loaded there.
  ASSERT_TRUE(file_header.relocatable_kernel);
  const uint64_t load = file_header.pref_address;
  EXPECT_EQ(entry->mode, CpuMode::long64);
  EXPECT_EQ(entry->rip, load + 0x200);
  EXPECT_EQ(entry->rsi, kZeroPageAddr);
  EXPECT_TRUE(entry->paging);
  uint64_t setup_size = (file_header.setup_sects + 1) * 512ull;
  EXPECT_EQ(read_guest(*memory, load, file.size() - setup_size),
            std::vector<uint8_t>(file.begin() + static_cast<ptrdiff_t>(setup_size), file.end()));

  auto params = memory->read_obj<BootParams>(kZeroPageAddr);
  ASSERT_TRUE(params);
  const SetupHeader& h = params->hdr;
  EXPECT_EQ(h.header, kSetupHeaderMagic);
  EXPECT_EQ(h.boot_flag, kBootFlag);
  EXPECT_EQ(h.version, file_header.version);
  EXPECT_GE(h.version, 0x0206);
  EXPECT_EQ(h.setup_sects, file_header.setup_sects);
  EXPECT_EQ(h.type_of_loader, 0xff);
  EXPECT_EQ(h.loadflags & (kLoadedHigh | kCanUseHeap), kLoadedHigh | kCanUseHeap);
  EXPECT_EQ(h.vid_mode, 0xffff);
  EXPECT_EQ(read_cstring(*memory, h.cmd_line_ptr), cmdline);

  EXPECT_EQ(h.ramdisk_size, initrd.size());
  EXPECT_EQ(h.ramdisk_image % kPageSize, 0u);
  EXPECT_LE(uint64_t{h.ramdisk_image} + h.ramdisk_size, uint64_t{file_header.initrd_addr_max} + 1);
  EXPECT_LE(uint64_t{h.ramdisk_image} + h.ramdisk_size, 512 * kMiB);
  EXPECT_GT(h.ramdisk_image, 512 * kMiB - initrd.size() - 2 * kPageSize);  // as high as possible
  EXPECT_GE(h.ramdisk_image, load + file_header.init_size);                // above the kernel
  EXPECT_EQ(read_guest(*memory, h.ramdisk_image, initrd.size()), initrd);

  std::vector<E820Range> expected{{0, 0x9fc00, kE820Ram},
                                  {0x9fc00, 0x100000 - 0x9fc00, kE820Reserved},
                                  {0x100000, 511 * kMiB, kE820Ram}};
  EXPECT_EQ(zero_page_e820(*params), expected);
  EXPECT_EQ(*memory->read_obj<uint32_t>(kMpTableAddr), 0x5f504d5fu);  // "_MP_"
}

TEST(BzImage, E820OfALargeGuestSkipsTheMmioHole) {
  REQUIRE_DEBIAN_KERNEL(path);
  auto memory = test::make_guest_memory(5 * kGiB);
  std::string initrd_path = write_temp("initrd-big", std::vector<uint8_t>(5000, 1));
  auto entry = load_kernel(*memory, {path, initrd_path, "console=ttyS0"}, 1);
  ::unlink(initrd_path.c_str());
  ASSERT_TRUE(entry) << entry.error().message;
  auto params = memory->read_obj<BootParams>(kZeroPageAddr);
  ASSERT_TRUE(params);
  std::vector<E820Range> expected{{0, 0x9fc00, kE820Ram},
                                  {0x9fc00, 0x100000 - 0x9fc00, kE820Reserved},
                                  {0x100000, 3 * kGiB - kMiB, kE820Ram},
                                  {4 * kGiB, 2 * kGiB, kE820Ram}};
  EXPECT_EQ(zero_page_e820(*params), expected);
  // Debian's initrd_addr_max is 2 GiB - 1: the initrd ends right below 2 GiB.
  const SetupHeader& h = params->hdr;
  EXPECT_LE(uint64_t{h.ramdisk_image} + h.ramdisk_size, uint64_t{h.initrd_addr_max} + 1);
  EXPECT_GT(uint64_t{h.ramdisk_image} + h.ramdisk_size,
            uint64_t{h.initrd_addr_max} + 1 - kPageSize);
}

TEST(BzImage, FallsBackToOneMiBWhenPrefAddressDoesNotFit) {
  REQUIRE_DEBIAN_KERNEL(path);
  auto file = read_bytes(path);
  SetupHeader file_header = header_of(file);
  // RAM that holds the kernel's init_size from 1 MiB but not from pref_address.
  uint64_t ram = (kMiB + file_header.init_size + 2 * kMiB) & ~(kMiB - 1);
  ASSERT_LT(ram, file_header.pref_address + file_header.init_size);
  auto memory = test::make_guest_memory(ram);
  auto entry = load_kernel(*memory, {path, "", "console=ttyS0"}, 1);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->rip, 0x100200u);
  uint64_t setup_size = (file_header.setup_sects + 1) * 512ull;
  EXPECT_EQ(read_guest(*memory, 0x100000, file.size() - setup_size),
            std::vector<uint8_t>(file.begin() + static_cast<ptrdiff_t>(setup_size), file.end()));
}

TEST(BzImage, RejectsCommandLineLongerThanCmdlineSize) {
  REQUIRE_DEBIAN_KERNEL(path);
  SetupHeader file_header = header_of(read_bytes(path));
  auto memory = test::make_guest_memory(256 * kMiB);
  auto entry = load_kernel(*memory, {path, "", std::string(file_header.cmdline_size + 1, 'x')}, 1);
  ASSERT_FALSE(entry);
  EXPECT_NE(entry.error().message.find("command line"), std::string::npos) << entry.error().message;
  EXPECT_TRUE(load_kernel(*memory, {path, "", std::string(file_header.cmdline_size, 'x')}, 1));
}

// A minimal well-formed bzImage: 4 setup sectors (setup_sects 0 means 4), a
// 4 KiB "kernel", protocol 2.15, not relocatable.
std::vector<uint8_t> synthetic_bzimage() {
  std::vector<uint8_t> file(5 * 512 + 4096);
  for (size_t i = 5 * 512; i < file.size(); ++i) file[i] = static_cast<uint8_t>(i);
  SetupHeader h{};
  h.setup_sects = 0;
  h.syssize = 4096 / 16;
  h.boot_flag = kBootFlag;
  h.jump = 0x66eb;  // jmp +0x66: header ends at 0x268
  h.header = kSetupHeaderMagic;
  h.version = 0x020f;
  h.loadflags = kLoadedHigh;
  h.initrd_addr_max = 0x7fffffff;
  h.xloadflags = kXlfKernel64;
  h.cmdline_size = 255;
  h.init_size = 0x10000;
  std::memcpy(file.data() + kSetupHeaderOffset, &h, sizeof h);
  return file;
}

void expect_bzimage_error(const std::vector<uint8_t>& file, const std::string& message_part) {
  auto memory = test::make_guest_memory(64 * kMiB);
  std::string path = write_temp("bad-bzimage", file);
  auto entry = load_kernel(*memory, {path, "", ""}, 1);
  ::unlink(path.c_str());
  ASSERT_FALSE(entry) << message_part;
  EXPECT_NE(entry.error().message.find(message_part), std::string::npos) << entry.error().message;
  EXPECT_NE(entry.error().message.find(path), std::string::npos) << entry.error().message;
}

TEST(BzImage, SyntheticImageLoadsAtOneMiBWithSetupSectsZeroMeaningFour) {
  auto file = synthetic_bzimage();
  auto memory = test::make_guest_memory(64 * kMiB);
  std::string path = write_temp("good-bzimage", file);
  auto entry = load_kernel(*memory, {path, "", "quiet"}, 1);
  ::unlink(path.c_str());
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->rip, 0x100200u);
  EXPECT_EQ(read_guest(*memory, 0x100000, 4096),
            std::vector<uint8_t>(file.begin() + 5 * 512, file.end()));
}

TEST(BzImage, RejectsBadMagic) {
  auto file = synthetic_bzimage();
  std::memcpy(file.data() + 0x202, "HdrZ", 4);
  expect_bzimage_error(file, "no \"HdrS\" magic");
}

TEST(BzImage, RejectsOldProtocol) {
  auto file = synthetic_bzimage();
  file[0x206] = 0x04;  // 2.04
  expect_bzimage_error(file, "boot protocol 2.04 is too old");
}

TEST(BzImage, RejectsTruncatedFiles) {
  auto file = synthetic_bzimage();
  expect_bzimage_error({file.begin(), file.begin() + 0x220}, "truncated");
  expect_bzimage_error({file.begin(), file.begin() + 5 * 512},
                       "truncated: the setup code needs 2560 bytes");
  expect_bzimage_error({file.begin(), file.end() - 100},
                       "truncated: the header declares a 4096-byte kernel");
}

TEST(BzImage, RejectsZImageAnd32BitOnlyKernels) {
  auto file = synthetic_bzimage();
  file[0x211] = 0;
  expect_bzimage_error(file, "zImage");
  file = synthetic_bzimage();
  file[0x236] = 0;
  expect_bzimage_error(file, "no 64-bit entry point");
}

TEST(BzImage, RejectsInitrdThatDoesNotFit) {
  auto memory = test::make_guest_memory(4 * kMiB);
  std::string path = write_temp("small-bzimage", synthetic_bzimage());
  std::string initrd = write_temp("huge-initrd", std::vector<uint8_t>(3 * kMiB));
  auto entry = load_kernel(*memory, {path, initrd, ""}, 1);
  ::unlink(path.c_str());
  ::unlink(initrd.c_str());
  ASSERT_FALSE(entry);
  EXPECT_NE(entry.error().message.find("no room"), std::string::npos) << entry.error().message;
}

}  // namespace
}  // namespace godwit::boot

namespace godwit::boot {
namespace {

TEST(SetupData, LinkedFromTheZeroPageOnlyForProtocol209AndLater) {
  auto memory = test::make_guest_memory(16 * kMiB);
  for (uint16_t version : {uint16_t{0x0208}, uint16_t{0x0209}, uint16_t{0x020f}}) {
    BootParams params;
    std::memset(&params, 0, sizeof params);
    params.hdr.version = version;
    ASSERT_TRUE(memory->write_obj(kZeroPageAddr, params));
    auto linked = link_setup_data(*memory, kZeroPageAddr, 0xdfff0);
    auto after = memory->read_obj<BootParams>(kZeroPageAddr);
    ASSERT_TRUE(after);
    if (version < 0x0209) {
      ASSERT_FALSE(linked);
      EXPECT_NE(linked.error().message.find("predates 2.09"), std::string::npos);
      EXPECT_EQ(after->hdr.setup_data, 0u);
    } else {
      ASSERT_TRUE(linked) << linked.error().message;
      EXPECT_EQ(after->hdr.setup_data, 0xdfff0u);
    }
  }
  EXPECT_FALSE(link_setup_data(*memory, kZeroPageAddr, 0)) << "0 means no chain";
}

}  // namespace
}  // namespace godwit::boot
