// The VM configuration stored in snapshot.json ("vm",
// vmm/snapshot/vm_config_json.h): every field survives the round trip, for
// kernel and image boots with devices and guest parameters; what belongs to
// the restoring process (API socket, console) is not stored; and every
// malformed field is refused with an error naming "vm.<field>".
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "vmm/snapshot/vm_config_json.h"

namespace godwit {
namespace {

using ::testing::HasSubstr;

VmConfig kernel_config() {
  VmConfig c;
  c.memory_size = 3 * kGiB + 512 * kMiB;
  c.backing = MemoryBacking::hugetlbfs;
  c.hugetlbfs_dir = "/dev/hugepages";
  c.vcpus = 7;
  c.api_sock = "/tmp/api.sock";
  c.serial = {SerialConfig::Kind::file, "/tmp/console.log"};
  c.boot = KernelBoot{"/boot/vmlinuz", "/boot/initrd.img", "console=ttyS0 quiet"};
  c.guest_params = {"ab.pages=64", "selfcheck.loops=3"};
  c.disks = {{"/var/disk0.img", false, true, "disk-zero"}, {"/var/disk1.img", true, false, ""}};
  c.nets = {{"tap0", "02:00:00:00:00:01"}, {"tap1", ""}};
  c.rng = true;
  c.virtio_discovery = VirtioDiscovery::cmdline;
  return c;
}

VmConfig image_config() {
  VmConfig c;
  c.memory_size = 64 * kMiB;
  c.backing = MemoryBacking::memfd;
  c.vcpus = 2;
  c.boot = ImageBoot{"guests/ab.img,load=0x100000,entry=0x100000,mode=long"};
  return c;
}

void expect_same_vm(const VmConfig& a, const VmConfig& b) {
  EXPECT_EQ(a.memory_size, b.memory_size);
  EXPECT_EQ(a.backing, b.backing);
  EXPECT_EQ(a.hugetlbfs_dir, b.hugetlbfs_dir);
  EXPECT_EQ(a.vcpus, b.vcpus);
  ASSERT_EQ(a.boot.index(), b.boot.index());
  if (const auto* k = std::get_if<KernelBoot>(&a.boot)) {
    const auto& l = std::get<KernelBoot>(b.boot);
    EXPECT_EQ(k->kernel, l.kernel);
    EXPECT_EQ(k->initrd, l.initrd);
    EXPECT_EQ(k->cmdline, l.cmdline);
  } else {
    EXPECT_EQ(std::get<ImageBoot>(a.boot).spec, std::get<ImageBoot>(b.boot).spec);
  }
  EXPECT_EQ(a.guest_params, b.guest_params);
  ASSERT_EQ(a.disks.size(), b.disks.size());
  for (size_t i = 0; i < a.disks.size(); ++i) {
    EXPECT_EQ(a.disks[i].path, b.disks[i].path);
    EXPECT_EQ(a.disks[i].readonly, b.disks[i].readonly);
    EXPECT_EQ(a.disks[i].direct, b.disks[i].direct);
    EXPECT_EQ(a.disks[i].serial, b.disks[i].serial);
  }
  ASSERT_EQ(a.nets.size(), b.nets.size());
  for (size_t i = 0; i < a.nets.size(); ++i) {
    EXPECT_EQ(a.nets[i].tap, b.nets[i].tap);
    EXPECT_EQ(a.nets[i].mac, b.nets[i].mac);
  }
  EXPECT_EQ(a.rng, b.rng);
  EXPECT_EQ(a.virtio_discovery, b.virtio_discovery);
}

TEST(SnapshotVmConfig, KernelBootWithDevicesRoundTrips) {
  const VmConfig original = kernel_config();
  const nlohmann::json j = vm_config_to_json(original);
  auto back = vm_config_from_json(j);
  ASSERT_TRUE(back) << back.error().message;
  expect_same_vm(*back, original);
  // Through text, as it is stored.
  auto reparsed = vm_config_from_json(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(reparsed) << reparsed.error().message;
  expect_same_vm(*reparsed, original);
}

TEST(SnapshotVmConfig, ImageBootRoundTrips) {
  for (MemoryBacking backing : {MemoryBacking::memfd, MemoryBacking::anonymous}) {
    VmConfig original = image_config();
    original.backing = backing;
    auto back = vm_config_from_json(vm_config_to_json(original));
    ASSERT_TRUE(back) << back.error().message;
    expect_same_vm(*back, original);
    EXPECT_TRUE(std::holds_alternative<ImageBoot>(back->boot));
  }
}

TEST(SnapshotVmConfig, TheRestoringProcessOwnsSocketAndConsole) {
  const nlohmann::json j = vm_config_to_json(kernel_config());
  const std::string text = j.dump();
  EXPECT_EQ(text.find("/tmp/api.sock"), std::string::npos) << text;
  EXPECT_EQ(text.find("/tmp/console.log"), std::string::npos) << text;
  auto back = vm_config_from_json(j);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->api_sock, "");
  EXPECT_EQ(back->serial.kind, SerialConfig::Kind::stdout_);
}

TEST(SnapshotVmConfig, TheStoredNamesAreStable) {
  // These names are the on-disk format: renaming one breaks old snapshots.
  const nlohmann::json j = vm_config_to_json(kernel_config());
  EXPECT_EQ(j["memory_size"], 3 * kGiB + 512 * kMiB);
  EXPECT_EQ(j["memory_backing"], "hugetlbfs");
  EXPECT_EQ(j["hugetlbfs_dir"], "/dev/hugepages");
  EXPECT_EQ(j["vcpus"], 7);
  EXPECT_EQ(j["boot"]["kernel"], "/boot/vmlinuz");
  EXPECT_EQ(j["boot"]["initrd"], "/boot/initrd.img");
  EXPECT_EQ(j["boot"]["cmdline"], "console=ttyS0 quiet");
  EXPECT_EQ(j["guest_params"], nlohmann::json({"ab.pages=64", "selfcheck.loops=3"}));
  EXPECT_EQ(j["disks"][0], nlohmann::json({{"path", "/var/disk0.img"},
                                           {"readonly", false},
                                           {"direct", true},
                                           {"serial", "disk-zero"}}));
  EXPECT_EQ(j["nets"][0], nlohmann::json({{"tap", "tap0"}, {"mac", "02:00:00:00:00:01"}}));
  EXPECT_EQ(j["rng"], true);
  EXPECT_EQ(j["virtio_discovery"], "cmdline");
  EXPECT_EQ(vm_config_to_json(image_config())["boot"],
            nlohmann::json({{"image", "guests/ab.img,load=0x100000,entry=0x100000,mode=long"}}));
}

std::string from_json_error(const nlohmann::json& j) {
  auto c = vm_config_from_json(j);
  return c ? std::string("(accepted)") : c.error().message;
}

TEST(SnapshotVmConfig, EveryMalformedFieldIsNamed) {
  const nlohmann::json good = vm_config_to_json(kernel_config());
  ASSERT_EQ(from_json_error(good), "(accepted)");
  using Edit = std::function<void(nlohmann::json&)>;
  struct Case {
    Edit edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& j) { j.erase("memory_size"); }, "vm.memory_size is missing"},
      {[](auto& j) { j["memory_size"] = "1G"; }, "vm.memory_size has the wrong type"},
      {[](auto& j) { j["memory_size"] = 0; }, "vm.memory_size 0 is not a positive multiple"},
      {[](auto& j) { j["memory_size"] = 4097; }, "vm.memory_size 4097 is not a positive multiple"},
      {[](auto& j) { j.erase("memory_backing"); }, "vm.memory_backing is missing"},
      {[](auto& j) { j["memory_backing"] = "tmpfs"; }, "unknown vm.memory_backing 'tmpfs'"},
      {[](auto& j) { j["memory_backing"] = 1; }, "vm.memory_backing has the wrong type"},
      {[](auto& j) { j.erase("hugetlbfs_dir"); }, "vm.hugetlbfs_dir is missing"},
      {[](auto& j) { j["hugetlbfs_dir"] = nullptr; }, "vm.hugetlbfs_dir has the wrong type"},
      {[](auto& j) { j.erase("vcpus"); }, "vm.vcpus is missing"},
      {[](auto& j) { j["vcpus"] = 0; }, "vm.vcpus is 0"},
      {[](auto& j) { j["vcpus"] = "two"; }, "vm.vcpus has the wrong type"},
      {[](auto& j) { j.erase("boot"); }, "vm.boot is missing"},
      {[](auto& j) { j["boot"] = nlohmann::json::object(); }, "vm.boot.image is missing"},
      {[](auto& j) { j["boot"].erase("initrd"); }, "vm.boot.initrd is missing"},
      {[](auto& j) { j["boot"].erase("cmdline"); }, "vm.boot.cmdline is missing"},
      {[](auto& j) { j["boot"]["kernel"] = 5; }, "vm.boot.kernel has the wrong type"},
      {[](auto& j) {
         j["boot"] = {{"image", false}};
       },
       "vm.boot.image has the wrong type"},
      {[](auto& j) { j.erase("guest_params"); }, "vm.guest_params is missing"},
      {[](auto& j) {
         j["guest_params"] = {1, 2};
       },
       "vm.guest_params has the wrong type"},
      {[](auto& j) { j["guest_params"] = "ab.pages=1"; }, "vm.guest_params has the wrong type"},
      {[](auto& j) { j.erase("disks"); }, "vm.disks is missing"},
      {[](auto& j) { j["disks"] = "disk.img"; }, "vm.disks has the wrong type"},
      {[](auto& j) { j["disks"][1].erase("path"); }, "vm.disks[].path is missing"},
      {[](auto& j) { j["disks"][0]["readonly"] = "on"; }, "vm.disks[].readonly has the wrong type"},
      {[](auto& j) { j["disks"][0].erase("direct"); }, "vm.disks[].direct is missing"},
      {[](auto& j) { j["disks"][0]["serial"] = 3; }, "vm.disks[].serial has the wrong type"},
      {[](auto& j) { j.erase("nets"); }, "vm.nets is missing"},
      {[](auto& j) { j["nets"][0].erase("tap"); }, "vm.nets[].tap is missing"},
      {[](auto& j) { j["nets"][1]["mac"] = nullptr; }, "vm.nets[].mac has the wrong type"},
      {[](auto& j) { j.erase("rng"); }, "vm.rng is missing"},
      {[](auto& j) { j["rng"] = 1; }, "vm.rng has the wrong type"},
      {[](auto& j) { j.erase("virtio_discovery"); }, "vm.virtio_discovery is missing"},
      {[](auto& j) { j["virtio_discovery"] = "acpi"; }, "unknown vm.virtio_discovery 'acpi'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    nlohmann::json j = good;
    c.edit(j);
    const std::string error = from_json_error(j);
    EXPECT_THAT(error, HasSubstr(c.message));
    EXPECT_THAT(error, HasSubstr("snapshot configuration"));
  }
  for (const nlohmann::json& not_object :
       {nlohmann::json(nullptr), nlohmann::json::array(), nlohmann::json("vm")})
    EXPECT_EQ(from_json_error(not_object), "snapshot configuration: \"vm\" is not an object");
}

}  // namespace
}  // namespace godwit
