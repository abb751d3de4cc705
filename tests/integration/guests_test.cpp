// The project's test guests under a real godwit: selfcheck passes with 1, 2
// and 4 vCPUs with timer interrupts on every vCPU; the a-b guest makes passes
// and a paused memory dump satisfies the a-b checker (ab-check), while a
// corrupted dump is rejected.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "godwit_process.h"
#include "tools/abcheck/abcheck.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

class Selfcheck : public ::testing::TestWithParam<int> {};

TEST_P(Selfcheck, PassesWithTimerTicksOnEveryVcpu) {
  GODWIT_REQUIRE_KVM();
  const int vcpus = GetParam();
  Godwit vm({"--image", build_path("guests/selfcheck.img"), "--vcpus", std::to_string(vcpus),
             "--memory", "512M", "--guest-param", "selfchk.rounds=8"},
            false);
  auto status = vm.wait_exit(240s);
  std::string out = vm.serial();
  ASSERT_TRUE(status) << "selfcheck did not finish: " << out;
  EXPECT_EQ(*status, 0) << out << vm.stderr_text();
  EXPECT_NE(out.find("PASS"), std::string::npos) << out;
  for (int i = 0; i < vcpus; ++i) {
    std::smatch m;
    std::regex re("cpu" + std::to_string(i) + " ticks=([0-9]+) rounds=8");
    ASSERT_TRUE(std::regex_search(out, m, re)) << "no summary for cpu" << i << ": " << out;
    EXPECT_GT(std::stoul(m[1]), 0u) << "no timer interrupts on cpu" << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Vcpus, Selfcheck, ::testing::Values(1, 2, 4));

void check_ab_guest(const std::string& image, const std::string& marker) {
  Godwit vm({"--image", build_path("guests/" + image), "--memory", "64M", "--guest-param",
             "ab.pages=2048"});
  ASSERT_TRUE(vm.wait_api(10s)) << vm.stderr_text();
  ASSERT_TRUE(vm.wait_serial(marker, 60s, 11)) << "fewer than 10 passes: " << vm.serial();

  for (int attempt = 0; attempt < 3; ++attempt) {
    auto [st, out] = vm.ctl({"pause"});
    ASSERT_EQ(st, 0) << out;
    std::string dump = vm.dir().file("ab.dump");
    auto [st2, out2] = vm.ctl({"memory", "read", "--gpa", "0x100000", "--len",
                               std::to_string(2048 * 4096), "--out", dump});
    ASSERT_EQ(st2, 0) << out2;
    std::string bytes = read_file(dump);
    auto r =
        abcheck::check_ab(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_EQ(r.pages, 2048u);

    // ab-check, the command, agrees; a hand-corrupted dump is rejected.
    Process ok({build_path("bin/ab-check"), dump}, vm.dir().file("c.out"), vm.dir().file("c.err"));
    EXPECT_EQ(ok.wait(30s), 0) << ok.stdout_text();
    bytes[700 * 4096] = static_cast<char>(bytes[700 * 4096] + 2);
    std::ofstream(dump, std::ios::binary | std::ios::trunc) << bytes;
    Process bad({build_path("bin/ab-check"), dump}, vm.dir().file("d.out"), vm.dir().file("d.err"));
    EXPECT_EQ(bad.wait(30s), 1) << bad.stdout_text();

    size_t passes = count_of(vm.serial(), marker);
    auto [st3, out3] = vm.ctl({"resume"});
    ASSERT_EQ(st3, 0) << out3;
    EXPECT_TRUE(vm.wait_serial(marker, 30s, passes + 2)) << "guest stopped making passes";
  }
  auto [st4, out4] = vm.ctl({"shutdown"});
  EXPECT_EQ(st4, 0) << out4;
  EXPECT_EQ(vm.wait_exit(30s), 0);
}

TEST(AbGuest, Ring0BootSectorKeepsTheInvariant) {
  GODWIT_REQUIRE_KVM();
  check_ab_guest("ab.img", "B");
}

TEST(AbGuest, Ring3VariantKeepsTheInvariant) {
  GODWIT_REQUIRE_KVM();
  check_ab_guest("ab-ring3.img", "B");
}

}  // namespace
}  // namespace godwit::test
