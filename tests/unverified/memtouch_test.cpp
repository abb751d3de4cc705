// Unverified: written without /dev/kvm (the guest was checked under QEMU TCG
// only); see tests/CMakeLists.txt, unverified/.
// memtouch.img (docs/guests.md) under a real godwit: the touched range is
// exactly [16 MiB, 16 MiB + mb MiB) with the MMIO hole skipped, so pages on
// both sides of the hole carry their stamp (gpa | pass + 1 << 48) and pages
// outside stay zero; re-dirtying passes move the stamps forward; parameters
// that do not fit stop the guest with status 2. Memory is read through the
// API while the VM is paused. Timings are never asserted.
#include <gtest/gtest.h>

#include <cstring>
#include <regex>

#include "integration/godwit_process.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kPage = 4096;

/// The stamp memtouch.img writes into the first qword of the page at `gpa`
/// in pass `pass` (0 = the first touch).
uint64_t stamp(uint64_t gpa, uint64_t pass) { return gpa | (((pass + 1) & 0xffff) << 48); }

/// One guest page read through GET /vm/memory (empty on failure, with the
/// test marked failed).
std::string read_page(Godwit& vm, uint64_t gpa) {
  auto r = vm.api().request(
      "GET", "/vm/memory?gpa=" + std::to_string(gpa) + "&len=" + std::to_string(kPage));
  EXPECT_TRUE(r) << "gpa " << gpa;
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << "gpa " << gpa << ": " << r->body;
  EXPECT_EQ(r->body.size(), kPage) << "gpa " << gpa;
  return r->status == 200 && r->body.size() == kPage ? r->body : std::string{};
}

uint64_t first_qword(const std::string& page) {
  uint64_t v = 0;
  if (page.size() >= sizeof v) std::memcpy(&v, page.data(), sizeof v);
  return v;
}

// 4200 MiB of RAM: [0, 3 GiB) and [4 GiB, 4 GiB + 1128 MiB). mb=3200 touches
// [16 MiB, 3 GiB) and then [4 GiB, 4 GiB + 144 MiB).
TEST(Memtouch, TouchesBothSidesOfTheHoleAndNothingElse) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", build_path("guests/memtouch.img"), "--memory", "4200M", "--guest-param",
             "memtouch.mb=3200"});
  ASSERT_TRUE(vm.wait_serial("memtouch: touched 3200 MiB", 180s))
      << vm.serial() << vm.stderr_text();
  // The heartbeat follows within a period (1 s by default).
  ASSERT_TRUE(vm.wait_serial("memtouch: pass 1\n", 30s)) << vm.serial();
  EXPECT_TRUE(std::regex_search(vm.serial(), std::regex("memtouch: touching 3200 MiB, then "
                                                        "dirtying 0 MiB every 1000 ms; tsc "
                                                        "[1-9][0-9]* MHz\n")))
      << vm.serial();
  ASSERT_EQ(vm.api().request("PUT", "/vm/pause")->status, 200);

  const uint64_t high_end = 4 * kGiB + (16 + 3200 - 3072) * kMiB;
  for (uint64_t gpa : {16 * kMiB, 16 * kMiB + kPage, kGiB + 12345 * kPage, 3 * kGiB - kPage,
                       4 * kGiB, 4 * kGiB + 77 * kPage, high_end - kPage}) {
    std::string page = read_page(vm, gpa);
    EXPECT_EQ(first_qword(page), stamp(gpa, 0)) << "gpa 0x" << std::hex << gpa;
    EXPECT_EQ(page.find_first_not_of('\0', 8), std::string::npos)
        << "memtouch wrote past the first qword at gpa 0x" << std::hex << gpa;
  }
  // Untouched: below 16 MiB (above the guest's page directories), the first
  // page past the range, and far above it.
  for (uint64_t gpa : {15 * kMiB, high_end, high_end + 64 * kMiB, 4 * kGiB + 1127 * kMiB}) {
    std::string page = read_page(vm, gpa);
    EXPECT_EQ(page.find_first_not_of('\0'), std::string::npos)
        << "untouched page is not zero at gpa 0x" << std::hex << gpa;
  }
  ASSERT_EQ(vm.api().request("PUT", "/vm/resume")->status, 200);
  size_t beats = count_of(vm.serial(), "memtouch: pass ");
  EXPECT_TRUE(vm.wait_serial("memtouch: pass ", 30s, beats + 1)) << "no heartbeat after resume";
}

// 8 of 32 MiB re-dirtied every 50 ms: after four passes every page carries a
// stamp of a later pass, with its own address in the low bits.
TEST(Memtouch, PassesRedirtyTheRangeInTurn) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", build_path("guests/memtouch.img"), "--memory", "64M", "--guest-param",
             "memtouch.mb=32,memtouch.dirtymb=8,memtouch.ms=50"});
  ASSERT_TRUE(vm.wait_serial("memtouch: pass 6\n", 60s)) << vm.serial() << vm.stderr_text();
  ASSERT_EQ(vm.api().request("PUT", "/vm/pause")->status, 200);
  std::string serial = vm.serial();
  uint64_t printed = 0;
  const std::regex pass_line("memtouch: pass (\\d+)\n");
  for (std::sregex_iterator it(serial.begin(), serial.end(), pass_line), end; it != end; ++it)
    printed = std::stoull((*it)[1]);
  ASSERT_GE(printed, 6u);

  auto r = vm.api().request(
      "GET", "/vm/memory?gpa=" + std::to_string(16 * kMiB) + "&len=" + std::to_string(32 * kMiB));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(r->body.size(), 32 * kMiB);
  std::vector<uint64_t> passes_seen(0x10000, 0);
  for (uint64_t off = 0; off < 32 * kMiB; off += kPage) {
    uint64_t gpa = 16 * kMiB + off, v = 0;
    std::memcpy(&v, r->body.data() + off, sizeof v);
    ASSERT_EQ(v & ((uint64_t{1} << 48) - 1), gpa) << "page 0x" << std::hex << gpa;
    uint64_t pass = (v >> 48) - 1;
    // Each pass covers the next quarter of the range, so after pass p every
    // page was written in one of passes p-3..p; the guest may be (partly)
    // through pass p+1 before printing its line.
    EXPECT_GE(pass + 3, printed) << "page 0x" << std::hex << gpa << " stale";
    EXPECT_LE(pass, printed + 1) << "page 0x" << std::hex << gpa;
    ++passes_seen[pass & 0xffff];
  }
  // Four quarters, or five while the pause caught a pass half way.
  size_t distinct = 0;
  for (uint64_t n : passes_seen) distinct += n != 0;
  EXPECT_GE(distinct, 4u);
  EXPECT_LE(distinct, 5u);
}

TEST(Memtouch, ParametersThatDoNotFitStopWithStatus2AndAReason) {
  GODWIT_REQUIRE_KVM();
  struct Case {
    std::string params, reason;
  };
  for (const Case& c : {Case{"memtouch.mb=49", "FAIL not enough RAM: need 16 MiB + memtouch.mb"},
                        Case{"memtouch.ms=0", "FAIL memtouch.ms must be at least 1"}}) {
    Godwit vm({"--image", build_path("guests/memtouch.img"), "--memory", "64M", "--guest-param",
               c.params},
              false);
    auto status = vm.wait_exit(60s);
    EXPECT_EQ(status, 2) << c.params << ": " << vm.serial() << vm.stderr_text();
    EXPECT_NE(vm.serial().find(c.reason), std::string::npos) << c.params << ": " << vm.serial();
  }
  // The largest range that fits runs.
  Godwit vm({"--image", build_path("guests/memtouch.img"), "--memory", "64M", "--guest-param",
             "memtouch.mb=48"});
  EXPECT_TRUE(vm.wait_serial("memtouch: touched 48 MiB", 60s)) << vm.serial();
}

}  // namespace
}  // namespace godwit::test
