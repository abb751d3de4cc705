// The REST API and godwitctl against a real godwit: status, pause/resume
// (the guest makes no progress while paused), memory reads with bounds,
// shutdown, and 4xx answers that leave the VMM running.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "godwit_process.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

TEST(Api, StatusReportsStateConfigAndLayout) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("spin"), "--vcpus", "2", "--memory", "4G"});
  ASSERT_TRUE(vm.wait_api(10s)) << vm.stderr_text();
  auto r = vm.api().request("GET", "/vm");
  ASSERT_TRUE(r);
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["vcpus"], 2);
  EXPECT_EQ(j["memory"]["size_bytes"], 4ull << 30);
  ASSERT_EQ(j["memory"]["regions"].size(), 2u);  // the MMIO hole splits RAM
  EXPECT_EQ(j["memory"]["regions"][1]["gpa"], 4ull << 30);
  EXPECT_EQ(j["config"]["boot"]["image"], probe("spin"));

  auto [st, out] = vm.ctl({"status"});
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("running"), std::string::npos) << out;
  auto [jst, jout] = vm.ctl({"status", "--json"});
  EXPECT_EQ(jst, 0);
  EXPECT_EQ(nlohmann::json::parse(jout)["state"], "running");
}

TEST(Api, PauseStopsGuestProgressAndResumeRestartsIt) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("spin"), "--vcpus", "2"});
  ASSERT_TRUE(vm.wait_api(10s));
  ASSERT_TRUE(vm.wait_serial(".", 30s, 2));

  auto [st, out] = vm.ctl({"pause"});
  ASSERT_EQ(st, 0) << out;
  EXPECT_EQ(nlohmann::json::parse(vm.api().request("GET", "/vm")->body)["state"], "paused");
  size_t marks = count_of(vm.serial(), ".");
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(count_of(vm.serial(), "."), marks) << "the guest made progress while paused";

  auto [st2, out2] = vm.ctl({"pause"});
  EXPECT_EQ(st2, 1) << "pausing a paused VM must be refused: " << out2;

  auto [st3, out3] = vm.ctl({"resume"});
  ASSERT_EQ(st3, 0) << out3;
  EXPECT_TRUE(vm.wait_serial(".", 30s, marks + 2)) << "no progress after resume";
}

TEST(Api, MemoryReadReturnsGuestBytesAndChecksBounds) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("spin"), "--memory", "64M"});
  ASSERT_TRUE(vm.wait_api(10s));
  // The spin probe's code sits at 0x7c00: its first bytes are "xor ax,ax".
  auto r = vm.api().request("GET", "/vm/memory?gpa=0x7c00&len=2");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body, std::string("\x31\xc0", 2));

  std::string out_file = vm.dir().file("dump.bin");
  auto [st, out] =
      vm.ctl({"memory", "read", "--gpa", "0x7c00", "--len", "4096", "--out", out_file});
  EXPECT_EQ(st, 0) << out;
  EXPECT_EQ(read_file(out_file).size(), 4096u);

  auto oob = vm.api().request("GET", "/vm/memory?gpa=0x3fff000&len=8192");
  ASSERT_TRUE(oob);
  EXPECT_EQ(oob->status, 400) << oob->body;
  EXPECT_NE(oob->body.find("error"), std::string::npos);
  auto bad = vm.api().request("GET", "/vm/memory?gpa=zzz&len=1");
  EXPECT_EQ(bad->status, 400);
  auto unknown = vm.api().request("GET", "/nope");
  EXPECT_EQ(unknown->status, 404);
  auto badjson = vm.api().request("PUT", "/vm/pause", "{not json");
  EXPECT_LT(badjson->status, 500);
  // Still alive and serving.
  EXPECT_EQ(vm.api().request("GET", "/vm")->status, 200);
}

TEST(Api, ShutdownThroughGodwitctlEndsTheProcess) {
  GODWIT_REQUIRE_KVM();
  Godwit vm({"--image", probe("spin")});
  ASSERT_TRUE(vm.wait_api(10s));
  auto [st, out] = vm.ctl({"shutdown"});
  EXPECT_EQ(st, 0) << out;
  EXPECT_EQ(vm.wait_exit(30s), 0);
}

TEST(Api, GodwitctlWithoutVmmSaysSo) {
  TempDir dir;
  std::string out = dir.file("out"), err = dir.file("err");
  Process p({build_path("bin/godwitctl"), "--api-sock", dir.file("missing.sock"), "status"}, out,
            err);
  EXPECT_EQ(p.wait(std::chrono::seconds(30)), 3);
  EXPECT_NE(read_file(err).find("cannot connect"), std::string::npos) << read_file(err);
}

}  // namespace
}  // namespace godwit::test
