// virtio-blk host side (issue 3, item 4): BlockDisk alone. Open-time checks
// (sizes, file types, O_DIRECT acceptance), the O_DIRECT bounce path against
// an in-memory model for unaligned offsets, lengths and buffers (also larger
// than the bounce buffer), write-zeroes without FALLOC_FL_ZERO_RANGE (tmpfs),
// and the error messages of failing I/O.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "devices/virtio/block_disk.h"
#include "tests/test_util.h"

namespace godwit::virtio {
namespace {

constexpr uint32_t kTmpfsMagic = 0x01021994;

/// A file of `size` bytes of `fill` in `dir`, removed at destruction.
class ScratchImage {
 public:
  ScratchImage(const std::string& dir, uint64_t size, uint8_t fill = 0x11) {
    path_ = dir + "/virtio-blk-disk-XXXXXX";
    int fd = ::mkstemp(path_.data());
    EXPECT_GE(fd, 0) << path_ << ": " << std::strerror(errno);
    std::vector<uint8_t> data(size, fill);
    EXPECT_EQ(::pwrite(fd, data.data(), size, 0), static_cast<ssize_t>(size));
    ::close(fd);
  }
  ~ScratchImage() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  /// The whole file as the host sees it.
  std::vector<uint8_t> contents() const {
    struct stat st {};
    EXPECT_EQ(::stat(path_.c_str(), &st), 0);
    std::vector<uint8_t> out(static_cast<size_t>(st.st_size));
    int fd = ::open(path_.c_str(), O_RDONLY);
    EXPECT_EQ(::pread(fd, out.data(), out.size(), 0), st.st_size);
    ::close(fd);
    return out;
  }

 private:
  std::string path_;
};

std::string build_dir() { return ::godwit::test::build_path("."); }

bool is_tmpfs(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && static_cast<uint32_t>(fs.f_type) == kTmpfsMagic;
}

/// Splits buffer [base, base+len) into `pieces` iovecs of random lengths.
std::vector<iovec> split(uint8_t* base, uint64_t len, int pieces, std::mt19937_64& rng) {
  std::vector<iovec> iov;
  for (int i = 0; i < pieces - 1 && len > 1; ++i) {
    uint64_t n = 1 + rng() % (len - 1);
    iov.push_back(iovec{base, n});
    base += n;
    len -= n;
  }
  iov.push_back(iovec{base, len});
  return iov;
}

// R4: open names the path and the problem.
TEST(BlockDiskTest, OpenRefusesBadImages) {
  ScratchImage empty(build_dir(), 0), odd(build_dir(), 1000);
  auto e = BlockDisk::open(empty.path(), false, false);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message.find(empty.path() + ": empty disk image (0 bytes)"),
            std::string::npos)
      << e.error().message;
  auto o = BlockDisk::open(odd.path(), false, false);
  ASSERT_FALSE(o.has_value());
  EXPECT_NE(o.error().message.find("size 1000 bytes is not a multiple of 512"), std::string::npos)
      << o.error().message;
  auto dev = BlockDisk::open("/dev/null", true, false);
  ASSERT_FALSE(dev.has_value());
  EXPECT_NE(dev.error().message.find("not a regular file or block device"), std::string::npos);
  auto missing = BlockDisk::open("/nonexistent/x.img", false, false);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("open /nonexistent/x.img: No such file"),
            std::string::npos)
      << missing.error().message;
}

// R4: O_DIRECT reads and writes at any byte offset and length, from
// buffers at any address, split any way, agree with a plain model; lengths
// beyond the 1 MiB bounce buffer are served in pieces.
TEST(BlockDiskTest, DirectIoMatchesModelForUnalignedRequests) {
  constexpr uint64_t kSize = 4 * kMiB;
  ScratchImage image(build_dir(), kSize, 0x5c);
  auto opened = BlockDisk::open(image.path(), false, true);
  if (!opened)
    GTEST_SKIP() << "O_DIRECT unusable in the build directory: " << opened.error().message;
  BlockDisk& disk = *opened;
  EXPECT_TRUE(disk.direct());
  EXPECT_GE(disk.direct_alignment(), 512u);
  std::vector<uint8_t> model(kSize, 0x5c);
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buffer(3 * kMiB + 64);
  for (int round = 0; round < 60; ++round) {
    const bool big = round % 10 == 0;
    uint64_t len = big ? kMiB + 1 + rng() % (2 * kMiB) : 1 + rng() % (64 * 1024);
    uint64_t offset = rng() % (kSize - len);
    if (round % 3 == 0) offset &= ~uint64_t{511};  // sector-aligned, as the device asks
    uint8_t* base = buffer.data() + rng() % 64;    // any address
    auto iov = split(base, len, 1 + static_cast<int>(rng() % 4), rng);
    for (uint64_t i = 0; i < len; ++i) base[i] = static_cast<uint8_t>(rng());
    ASSERT_TRUE(disk.write(offset, iov).has_value()) << "round " << round;
    std::memcpy(model.data() + offset, base, len);

    uint64_t rlen = 1 + rng() % (big ? 2 * kMiB : 64 * 1024);
    uint64_t roff = rng() % (kSize - rlen);
    uint8_t* rbase = buffer.data() + rng() % 64;
    auto riov = split(rbase, rlen, 1 + static_cast<int>(rng() % 4), rng);
    ASSERT_TRUE(disk.read(roff, riov).has_value()) << "round " << round;
    ASSERT_EQ(std::memcmp(rbase, model.data() + roff, rlen), 0)
        << "round " << round << " offset " << roff << " length " << rlen;
  }
  EXPECT_TRUE(image.contents() == model) << "file differs from the model";
}

// R4: aligned O_DIRECT requests (no bounce) are correct too.
TEST(BlockDiskTest, DirectIoAlignedFastPath) {
  ScratchImage image(build_dir(), kMiB, 0);
  auto opened = BlockDisk::open(image.path(), false, true);
  if (!opened)
    GTEST_SKIP() << "O_DIRECT unusable in the build directory: " << opened.error().message;
  void* p = nullptr;
  ASSERT_EQ(::posix_memalign(&p, 4096, 3 * 4096), 0);
  auto* buf = static_cast<uint8_t*>(p);
  for (int i = 0; i < 3 * 4096; ++i) buf[i] = static_cast<uint8_t>(i / 7);
  iovec w[2] = {{buf, 4096}, {buf + 4096, 2 * 4096}};
  ASSERT_TRUE(opened->write(8192, w).has_value());
  std::memset(buf, 0, 3 * 4096);
  iovec r{buf, 3 * 4096};
  ASSERT_TRUE(opened->read(8192, std::span(&r, 1)).has_value());
  auto file = image.contents();
  EXPECT_EQ(std::memcmp(file.data() + 8192, buf, 3 * 4096), 0);
  EXPECT_EQ(file[8192 + 4095], static_cast<uint8_t>(4095 / 7));
  std::free(p);
}

// R4: on tmpfs, O_DIRECT either works (Linux >= 6.6) or is refused at open
// with a message that says O_DIRECT and suggests direct=off.
TEST(BlockDiskTest, DirectOnTmpfsWorksOrSaysWhy) {
  if (!is_tmpfs("/dev/shm")) GTEST_SKIP() << "/dev/shm is not tmpfs here";
  ScratchImage image("/dev/shm", 64 * 1024, 0x77);
  auto opened = BlockDisk::open(image.path(), false, true);
  if (!opened) {
    EXPECT_NE(opened.error().message.find("O_DIRECT"), std::string::npos) << opened.error().message;
    EXPECT_NE(opened.error().message.find("direct=off"), std::string::npos)
        << opened.error().message;
    return;
  }
  std::vector<uint8_t> got(1000);
  iovec v{got.data(), got.size()};
  ASSERT_TRUE(opened->read(512, std::span(&v, 1)).has_value());
  EXPECT_EQ(got, std::vector<uint8_t>(1000, 0x77));
}

// R4: without FALLOC_FL_ZERO_RANGE (tmpfs) write-zeroes writes the zeroes,
// more than the zero buffer at a time included; hole punching works there.
TEST(BlockDiskTest, WriteZeroesWithoutZeroRange) {
  if (!is_tmpfs("/dev/shm")) GTEST_SKIP() << "/dev/shm is not tmpfs here";
  ScratchImage image("/dev/shm", 4 * kMiB, 0xaa);
  auto disk = BlockDisk::open(image.path(), false, false).value();
  EXPECT_TRUE(disk.can_punch_hole());
  ASSERT_TRUE(disk.write_zeroes(512, kMiB + 1024).has_value());
  ASSERT_TRUE(disk.write_zeroes(3 * kMiB, 512).has_value());
  ASSERT_TRUE(disk.punch_hole(2 * kMiB, 8192).has_value());
  auto file = image.contents();
  std::vector<uint8_t> want(4 * kMiB, 0xaa);
  std::memset(want.data() + 512, 0, kMiB + 1024);
  std::memset(want.data() + 3 * kMiB, 0, 512);
  std::memset(want.data() + 2 * kMiB, 0, 8192);
  EXPECT_TRUE(file == want);
}

// R4: failures name the operation, the file and the range.
TEST(BlockDiskTest, ErrorsNameOperationAndRange) {
  ScratchImage image(build_dir(), 8192);
  auto disk = BlockDisk::open(image.path(), false, false).value();
  ASSERT_EQ(::truncate(image.path().c_str(), 4096), 0);
  std::vector<uint8_t> buf(1024);
  iovec v{buf.data(), buf.size()};
  auto r = disk.read(4096, std::span(&v, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "preadv " + image.path() + " offset 4096 length 1024: end of file");

  auto ro = BlockDisk::open(image.path(), true, false).value();
  auto w = ro.write(0, std::span(&v, 1));
  ASSERT_FALSE(w.has_value());
  EXPECT_NE(w.error().message.find("read-only"), std::string::npos) << w.error().message;
  EXPECT_FALSE(ro.can_punch_hole()) << "a read-only disk never punches";
}

}  // namespace
}  // namespace godwit::virtio
