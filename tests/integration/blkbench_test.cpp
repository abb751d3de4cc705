// Smoke test of the block benchmark's guest (blkbench.img, docs/guests.md)
// under a real godwit with tiny request counts: writes land on the disk file
// exactly as the guest laid out its buffers, reads and writes of 4 KiB and
// 64 KiB (sweeping past the span several times) complete with status 0 and
// print the result line, reads leave the disk untouched, and parameters or
// disks that do not fit stop the guest with status 2 and a reason. Timings
// are never asserted (the benchmark itself is bench/block_bench.cpp).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <regex>

#include "godwit_process.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

constexpr size_t kDiskBytes = 1 << 20;  // blkbench.span=1
constexpr char kFill = static_cast<char>(0xEE);
/// blkbench.img's data buffers and OUT fill (tests/guests/blkbench*.inc).
constexpr uint64_t kDataBase = 0x1000000;
constexpr uint64_t kFillXor = 0x5a5aa5a5c3c33c3cULL;

std::string make_disk(const TempDir& dir) {
  std::string path = dir.file("disk.img");
  std::ofstream(path, std::ios::binary) << std::string(kDiskBytes, kFill);
  return path;
}

/// Runs blkbench.img on `disk` (options appended to path=) with `params`;
/// returns {exit status or -1 on timeout, serial output + stderr}.
std::pair<int, std::string> run_blkbench(const std::string& disk, const std::string& disk_options,
                                         const std::string& params) {
  std::vector<std::string> args{"--image", build_path("guests/blkbench.img"), "--memory", "64M"};
  if (!disk.empty()) {
    args.push_back("--disk");
    args.push_back("path=" + disk + disk_options);
  }
  if (!params.empty()) {
    args.push_back("--guest-param");
    args.push_back(params);
  }
  Godwit vm(args, false);
  auto status = vm.wait_exit(60s);
  return {status.value_or(-1), vm.serial() + vm.stderr_text()};
}

std::string result_line(uint32_t size, uint32_t count, uint32_t depth, int write) {
  return "blkbench size=" + std::to_string(size) + " count=" + std::to_string(count) +
         " depth=" + std::to_string(depth) + " write=" + std::to_string(write) +
         " span=1 queue=256 tsc=";
}

TEST(Blkbench, WritesLandOnTheDiskAsTheGuestLaidThemOut) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  std::string disk = make_disk(dir);
  // count = depth: slot s writes once, its buffer (kDataBase + s * 4 KiB) to
  // sector 8 * s, so disk offset o holds the fill of guest address
  // kDataBase + o for o < 64 KiB.
  auto [status, out] =
      run_blkbench(disk, "", "blkbench.size=4,blkbench.count=16,blkbench.depth=16,blkbench.span=1");
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find(result_line(4, 16, 16, 1)), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("tsc=[1-9][0-9]* errors=0\n"))) << out;

  std::string bytes = read_file(disk);
  ASSERT_EQ(bytes.size(), kDiskBytes);
  for (size_t o = 0; o < 64 * 1024; o += 8) {
    uint64_t got;
    std::memcpy(&got, bytes.data() + o, sizeof got);
    ASSERT_EQ(got, (kDataBase + o) ^ kFillXor) << "disk offset " << o;
  }
  EXPECT_EQ(bytes.find_first_not_of(kFill, 64 * 1024), std::string::npos)
      << "the guest wrote past its 16 requests";
}

TEST(Blkbench, WritesAndReadsOf4And64KiBComplete) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  std::string disk = make_disk(dir);
  for (uint32_t size : {4u, 64u}) {
    // 64 requests of 64 KiB sweep the 1 MiB span four times.
    for (int write : {1, 0}) {
      std::string before = read_file(disk);
      std::string params =
          "blkbench.size=" + std::to_string(size) +
          ",blkbench.count=64,blkbench.span=1,blkbench.write=" + std::to_string(write);
      auto [status, out] = run_blkbench(disk, "", params);
      ASSERT_EQ(status, 0) << params << ": " << out;
      EXPECT_NE(out.find(result_line(size, 64, 16, write)), std::string::npos) << out;
      EXPECT_NE(out.find(" errors=0\n"), std::string::npos) << out;
      if (write == 0) {
        EXPECT_EQ(read_file(disk), before) << "a read changed the disk";
      }
    }
  }
  EXPECT_NE(read_file(disk).find_first_not_of(kFill), std::string::npos)
      << "the writes left no trace";
}

TEST(Blkbench, DirectAndReadOnlyDisksServeTheirRequests) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  std::string disk = make_disk(dir);
  auto [status, out] = run_blkbench(disk, ",direct=on", "blkbench.count=64,blkbench.span=1");
  if (out.find("O_DIRECT") != std::string::npos) GTEST_SKIP() << "no O_DIRECT here: " << out;
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(result_line(4, 64, 16, 1)), std::string::npos) << out;

  auto [ro_status, ro_out] =
      run_blkbench(disk, ",readonly=on", "blkbench.count=64,blkbench.span=1,blkbench.write=0");
  EXPECT_EQ(ro_status, 0) << ro_out;
  EXPECT_NE(ro_out.find(result_line(4, 64, 16, 0)), std::string::npos) << ro_out;
}

TEST(Blkbench, SetupThatDoesNotFitStopsWithStatus2AndAReason) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  std::string disk = make_disk(dir);
  struct Case {
    std::string disk_options, params, reason;
    bool with_disk = true;
  };
  const std::vector<Case> cases{
      {"", "blkbench.span=1", "no virtio-blk device in the device tree", false},
      {"", "blkbench.span=2", "the disk is smaller than blkbench.span; sectors: 2048"},
      {",readonly=on", "blkbench.span=1", "the disk is read-only"},
      {"", "blkbench.span=1,blkbench.depth=86", "blkbench.depth must be 1..85"},
      {"", "blkbench.span=1,blkbench.size=0", "blkbench.size must be 1..4096"},
      {"", "blkbench.span=1,blkbench.size=2048", "blkbench.span must be"},
      {"", "blkbench.span=1,blkbench.count=0", "blkbench.count must be at least 1"},
  };
  for (const Case& c : cases) {
    auto [status, out] = run_blkbench(c.with_disk ? disk : "", c.disk_options, c.params);
    EXPECT_EQ(status, 2) << c.params << ": " << out;
    EXPECT_NE(
        out.find("FAIL " + std::string(c.reason.starts_with("blkbench.") ? "" : "blkbench: ") +
                 c.reason),
        std::string::npos)
        << c.params << ": " << out;
  }
}

}  // namespace
}  // namespace godwit::test
