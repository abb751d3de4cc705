// The virtio devices end to end under a real godwit: the selfcheck guest
// finds them in the device tree and drives them with its own drivers
// (virtio-blk pattern write / read back / flush / get-id, an ARP exchange
// through virtio-net with the host kernel behind a tap in a network
// namespace the test owns, virtio-rng), with interrupts through irqfd; the
// disk file afterwards holds the pattern, checked from the host side; GET /vm
// lists the devices with their counters; bad device options fail clearly.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "integration/godwit_process.h"
#include "integration/selfcheck_devices.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

nlohmann::json virtio_info(Godwit& vm) {
  auto r = vm.api().request("GET", "/vm");
  if (!r || r->status != 200) return {};
  return nlohmann::json::parse(r->body).value("virtio", nlohmann::json::array());
}

const nlohmann::json* find_device(const nlohmann::json& list, const std::string& name) {
  for (const auto& d : list)
    if (d.value("name", "") == name) return &d;
  return nullptr;
}

TEST(VirtioDevices, SelfcheckDrivesDiskNetAndRngOnTwoVcpus) {
  GODWIT_REQUIRE_KVM();
  TapNamespace ns;
  if (std::string why = ns.setup("gwtap0"); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  std::string disk = make_disk(dir, "disk.img");
  Godwit vm({"--image", build_path("guests/selfcheck.img"), "--vcpus", "2", "--memory", "256M",
             "--guest-param", "selfchk.rounds=30", "--disk",
             "path=" + disk + ",serial=gw-test-disk", "--net", "tap=gwtap0,mac=52:54:00:12:34:56",
             "--rng"});
  ASSERT_TRUE(vm.wait_api(20s)) << vm.stderr_text();
  ASSERT_TRUE(vm.wait_serial("virtio-rng ok", 120s)) << vm.serial() << vm.stderr_text();

  // While the workload runs: the API lists the three devices, active, with counters.
  nlohmann::json list = virtio_info(vm);
  ASSERT_EQ(list.size(), 3u) << list.dump(1);
  const auto* blk = find_device(list, "blk0");
  const auto* net = find_device(list, "net0");
  const auto* rng = find_device(list, "rng0");
  ASSERT_TRUE(blk && net && rng) << list.dump(1);
  EXPECT_EQ((*blk)["base"], 0xd0001000u);
  EXPECT_EQ((*blk)["irq"], 5);
  EXPECT_EQ((*net)["irq"], 6);
  EXPECT_EQ((*rng)["irq"], 7);
  for (const auto* d : {blk, net, rng}) {
    EXPECT_TRUE((*d)["active"].get<bool>()) << d->dump(1);
    EXPECT_FALSE(d->contains("needs_reset")) << d->dump(1);
  }
  EXPECT_GE((*blk)["counters"]["write_bytes"].get<uint64_t>(), kPatternEnd - kPatternBegin);
  EXPECT_GE((*blk)["counters"]["read_bytes"].get<uint64_t>(), kPatternEnd - kPatternBegin);
  EXPECT_GT((*net)["counters"]["tx_frames"].get<uint64_t>(), 0u);
  EXPECT_GT((*net)["counters"]["rx_frames"].get<uint64_t>(), 0u);
  EXPECT_GT((*rng)["counters"]["bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ((*net)["properties"]["mac"], "52:54:00:12:34:56");

  auto status = vm.wait_exit(240s);
  std::string out = vm.serial();
  ASSERT_TRUE(status) << "selfcheck did not finish: " << out;
  EXPECT_EQ(*status, 0) << out << vm.stderr_text();
  EXPECT_NE(out.find("virtio-blk ok id=gw-test-disk"), std::string::npos) << out;
  EXPECT_NE(out.find("virtio-net ok peer="), std::string::npos) << out;
  // Interrupts reached the guest through irqfd -> in-kernel IOAPIC for every device.
  std::smatch irqs;
  ASSERT_TRUE(std::regex_search(out, irqs,
                                std::regex("virtio irqs blk=([0-9]+) net=([0-9]+) rng=([0-9]+)")))
      << out;
  for (int i = 1; i <= 3; ++i) EXPECT_GT(std::stoul(irqs[i]), 0u) << irqs[0];
  EXPECT_NE(out.find("PASS"), std::string::npos) << out;
  EXPECT_EQ(out.find("FAIL"), std::string::npos) << out;
  EXPECT_EQ(check_disk(disk, true), "");
}

TEST(VirtioDevices, ReadOnlyDiskIsReadButNeverWritten) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  std::string disk = make_disk(dir, "ro.img");
  Godwit vm({"--image", build_path("guests/selfcheck.img"), "--memory", "128M", "--guest-param",
             "selfchk.rounds=2", "--disk", "path=" + disk + ",readonly=on"},
            false);
  auto status = vm.wait_exit(240s);
  std::string out = vm.serial();
  ASSERT_TRUE(status) << out;
  EXPECT_EQ(*status, 0) << out << vm.stderr_text();
  EXPECT_NE(out.find("virtio-blk ro"), std::string::npos) << out;
  EXPECT_NE(out.find("PASS"), std::string::npos) << out;
  EXPECT_EQ(check_disk(disk, false), "");
}

TEST(VirtioDevices, BadDeviceOptionsStopGodwitWithTheReason) {
  TempDir dir;
  std::string odd = dir.file("odd.img");
  std::ofstream(odd, std::ios::binary) << std::string(1000, 'x');
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--disk", "path=" + dir.file("missing.img")}, 1, "missing.img"},
      {{"--disk", "path=" + odd}, 1, "512"},
      {{"--disk", "readonly=on"}, 2, "path=FILE is required"},
      {{"--net", "tap=gw0,mac=01:00:5e:00:00:01"}, 2, "multicast"},
      {{"--virtio-discovery", "acpi"}, 2, "expected dtb or cmdline"},
  };
  for (const Case& c : cases) {
    if (c.status == 1 && ::access("/dev/kvm", R_OK | W_OK) != 0) continue;  // needs a VM
    std::vector<std::string> args = {"--image", build_path("guests/selfcheck.img")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Godwit vm(args, false);
    auto status = vm.wait_exit(30s);
    ASSERT_TRUE(status) << c.args[1];
    EXPECT_EQ(*status, c.status) << c.args[1] << ": " << vm.stderr_text();
    EXPECT_NE(vm.stderr_text().find(c.message), std::string::npos)
        << c.args[1] << ": " << vm.stderr_text();
  }
}

}  // namespace
}  // namespace godwit::test
