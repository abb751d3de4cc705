// GuestMemory: creation and its failures, bounds-checked access, and the
// VMM-side dirty marking that KVM cannot do for us.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <numeric>
#include <thread>

#include "memory/guest_memory.h"

namespace godwit {
namespace {

GuestMemoryOptions options(uint64_t size, MemoryBacking backing = MemoryBacking::memfd,
                           std::string hugetlbfs_dir = {}) {
  GuestMemoryOptions o;
  o.size = size;
  o.backing = backing;
  o.hugetlbfs_dir = std::move(hugetlbfs_dir);
  return o;
}

std::unique_ptr<GuestMemory> make(uint64_t size, MemoryBacking backing = MemoryBacking::memfd) {
  auto mem = GuestMemory::create(options(size, backing));
  EXPECT_TRUE(mem) << mem.error().message;
  return mem ? std::move(*mem) : nullptr;
}

uint64_t dirty_pages(GuestMemory& mem) {
  uint64_t n = 0;
  for (size_t i = 0; i < mem.regions().size(); ++i) n += mem.vmm_dirty(i).count();
  return n;
}

TEST(GuestMemory, RejectsZeroSize) {
  auto mem = GuestMemory::create(options(0));
  ASSERT_FALSE(mem);
  EXPECT_NE(mem.error().message.find("size 0"), std::string::npos) << mem.error().message;
}

TEST(GuestMemory, RejectsSizeNotMultipleOfPage) {
  auto mem = GuestMemory::create(options(kMiB + 1));
  ASSERT_FALSE(mem);
  EXPECT_NE(mem.error().message.find("not a multiple of 4 KiB"), std::string::npos)
      << mem.error().message;
}

TEST(GuestMemory, RejectsMoreThanHostCanBack) {
  auto mem = GuestMemory::create(options(1024 * 1024 * kGiB));  // 1 PiB
  ASSERT_FALSE(mem);
  EXPECT_NE(mem.error().message.find("memory size 1048576 GiB exceeds host memory ("),
            std::string::npos)
      << mem.error().message;
}

TEST(GuestMemory, HugetlbfsRejectsDirectoryThatIsNotHugetlbfs) {
  auto mem = GuestMemory::create(options(2 * kMiB, MemoryBacking::hugetlbfs, "/tmp"));
  ASSERT_FALSE(mem);
  EXPECT_NE(mem.error().message.find("/tmp is not a hugetlbfs mount"), std::string::npos)
      << mem.error().message;
}

TEST(GuestMemory, MemfdRegionsExposeFdAndOffset) {
  auto mem = make(5 * kGiB);  // sparse: nothing is touched
  ASSERT_TRUE(mem);
  ASSERT_EQ(mem->regions().size(), 2u);
  EXPECT_EQ(mem->total_size(), 5 * kGiB);
  for (size_t i = 0; i < 2; ++i) {
    const MemoryRegion& r = mem->regions()[i];
    EXPECT_EQ(r.slot, i);
    EXPECT_GE(r.fd, 0);
    EXPECT_EQ(r.fd_offset, 0u);
    struct stat st {};
    ASSERT_EQ(::fstat(r.fd, &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), r.size);
  }
  EXPECT_NE(mem->regions()[0].fd, mem->regions()[1].fd);
  EXPECT_EQ(mem->regions()[1].gpa, 4 * kGiB);
  EXPECT_EQ(mem->find_region(4 * kGiB + 5), &mem->regions()[1]);
  EXPECT_EQ(mem->find_region(3 * kGiB + 5), nullptr);  // the hole
}

TEST(GuestMemory, AnonymousHasNoFdAndWorks) {
  auto mem = make(4 * kMiB, MemoryBacking::anonymous);
  ASSERT_TRUE(mem);
  EXPECT_EQ(mem->regions()[0].fd, -1);
  ASSERT_TRUE(mem->write_obj<uint64_t>(0x1000, 0x1122334455667788));
  auto v = mem->read_obj<uint64_t>(0x1000);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x1122334455667788u);
}

TEST(GuestMemory, MemfdWritesAreVisibleThroughTheFd) {
  auto mem = make(1 * kMiB);
  ASSERT_TRUE(mem);
  const uint8_t bytes[] = {1, 2, 3};
  ASSERT_TRUE(mem->write(0x2000, bytes));
  uint8_t back[3] = {};
  ASSERT_EQ(::pread(mem->regions()[0].fd, back, 3, 0x2000), 3);
  EXPECT_EQ(back[2], 3);
}

TEST(GuestMemory, WriteReadRoundTripAcrossPages) {
  auto mem = make(1 * kMiB);
  ASSERT_TRUE(mem);
  std::vector<uint8_t> data(3 * kPageSize + 100);
  std::iota(data.begin(), data.end(), uint8_t{7});
  ASSERT_TRUE(mem->write(kPageSize - 50, data));
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(mem->read(kPageSize - 50, back));
  EXPECT_EQ(back, data);
}

TEST(GuestMemory, WriteMarksExactlyTheWrittenPages) {
  auto mem = make(1 * kMiB);
  ASSERT_TRUE(mem);
  const uint8_t one[1] = {0xAA};
  ASSERT_TRUE(mem->write(5 * kPageSize + 17, one));
  EXPECT_EQ(dirty_pages(*mem), 1u);
  EXPECT_TRUE(mem->vmm_dirty(0).test(5));

  mem->vmm_dirty(0).clear();
  const uint8_t two[2] = {1, 2};
  ASSERT_TRUE(mem->write(8 * kPageSize - 1, two));  // last byte of 7, first of 8
  EXPECT_EQ(dirty_pages(*mem), 2u);
  EXPECT_TRUE(mem->vmm_dirty(0).test(7));
  EXPECT_TRUE(mem->vmm_dirty(0).test(8));
}

TEST(GuestMemory, ReadDoesNotMarkDirty) {
  auto mem = make(1 * kMiB);
  ASSERT_TRUE(mem);
  uint8_t buf[64];
  ASSERT_TRUE(mem->read(0, buf));
  EXPECT_EQ(dirty_pages(*mem), 0u);
}

TEST(GuestMemory, HighRegionWritesMarkTheHighBitmap) {
  auto mem = make(3 * kGiB + 8 * kMiB);
  ASSERT_TRUE(mem);
  ASSERT_TRUE(mem->write_obj<uint32_t>(4 * kGiB + 3 * kPageSize, 42));
  EXPECT_EQ(mem->vmm_dirty(0).count(), 0u);
  EXPECT_EQ(mem->vmm_dirty(1).count(), 1u);
  EXPECT_TRUE(mem->vmm_dirty(1).test(3));
}

TEST(GuestMemory, OutOfBoundsAccessFailsWithMessage) {
  auto mem = make(1 * kMiB);
  ASSERT_TRUE(mem);
  uint8_t buf[16] = {};
  auto r = mem->read(kMiB - 8, buf);  // straddles the end
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("read gpa 0xffff8 len 16"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("outside guest RAM"), std::string::npos);

  auto w = mem->write(2 * kMiB, buf);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("write gpa 0x200000"), std::string::npos) << w.error().message;
  EXPECT_EQ(dirty_pages(*mem), 0u);  // a failed write changes nothing
}

TEST(GuestMemory, WriteIntoTheHoleFails) {
  auto mem = make(3 * kGiB + 4 * kMiB);
  ASSERT_TRUE(mem);
  auto w = mem->write_obj<uint32_t>(3 * kGiB - 2, 0);  // runs into the hole
  EXPECT_FALSE(w);
}

TEST(GuestMemory, HostSpanAndMarkDirty) {
  auto mem = make(1 * kMiB);
  ASSERT_TRUE(mem);
  auto span = mem->host_span(0x3000, 0x2000);
  ASSERT_TRUE(span);
  (*span)[0x1000] = 9;
  mem->mark_dirty(0x3000 + 0x1000, 1);
  EXPECT_TRUE(mem->vmm_dirty(0).test(4));
  EXPECT_EQ(*mem->read_obj<uint8_t>(0x4000), 9);
  EXPECT_FALSE(mem->host_span(kMiB - 10, 20));
  mem->mark_dirty(kMiB - kPageSize, 10 * kMiB);  // clipped, no crash
  EXPECT_TRUE(mem->vmm_dirty(0).test(255));
}

TEST(GuestMemory, ConcurrentWritesFromSeveralThreadsAllMarked) {
  auto mem = make(16 * kMiB);
  ASSERT_TRUE(mem);
  const uint64_t pages = 16 * kMiB / kPageSize;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (uint64_t p = t; p < pages; p += 4)
        ASSERT_TRUE(mem->write_obj<uint32_t>(p * kPageSize, static_cast<uint32_t>(p)));
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mem->vmm_dirty(0).count(), pages);
  EXPECT_EQ(*mem->read_obj<uint32_t>(77 * kPageSize), 77u);
}

TEST(GuestMemory, PrefaultKeepsContentsAndMarksNothing) {
  for (auto backing : {MemoryBacking::memfd, MemoryBacking::anonymous}) {
    auto mem = make(8 * kMiB, backing);
    ASSERT_TRUE(mem);
    ASSERT_TRUE(mem->write_obj<uint64_t>(0x5000, 0xdeadbeef));
    mem->vmm_dirty(0).clear();
    auto r = mem->prefault(3);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*mem->read_obj<uint64_t>(0x5000), 0xdeadbeefu);
    EXPECT_EQ(*mem->read_obj<uint64_t>(0x7000), 0u);
    EXPECT_EQ(dirty_pages(*mem), 0u);
  }
}

}  // namespace
}  // namespace godwit
