// VmConfig <-> the "vm" object of snapshot.json.
#include "vmm/snapshot/vm_config_json.h"

#include "snapshot/manifest.h"

namespace godwit {

namespace {

/// json[key] as T, or an error naming "vm.<key>".
template <typename T>
Result<T> field(const nlohmann::json& json, const char* key, const std::string& prefix = "vm") {
  auto it = json.find(key);
  if (it == json.end())
    return fail("snapshot configuration: " + prefix + "." + key + " is missing");
  if (!snapshot::json_fits<T>(*it))
    return fail("snapshot configuration: " + prefix + "." + key +
                " is out of range or not an integer");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fail("snapshot configuration: " + prefix + "." + key + " has the wrong type");
  }
}

}  // namespace

nlohmann::json vm_config_to_json(const VmConfig& c) {
  nlohmann::json j;
  j["memory_size"] = c.memory_size;
  j["memory_backing"] = backing_name(c.backing);
  j["hugetlbfs_dir"] = c.hugetlbfs_dir;
  j["vcpus"] = c.vcpus;
  if (const auto* k = std::get_if<KernelBoot>(&c.boot)) {
    j["boot"] = {{"kernel", k->kernel}, {"initrd", k->initrd}, {"cmdline", k->cmdline}};
  } else {
    j["boot"] = {{"image", std::get<ImageBoot>(c.boot).spec}};
  }
  j["guest_params"] = c.guest_params;
  nlohmann::json disks = nlohmann::json::array();
  for (const DiskConfig& d : c.disks)
    disks.push_back(
        {{"path", d.path}, {"readonly", d.readonly}, {"direct", d.direct}, {"serial", d.serial}});
  j["disks"] = disks;
  nlohmann::json nets = nlohmann::json::array();
  for (const NetConfig& n : c.nets) nets.push_back({{"tap", n.tap}, {"mac", n.mac}});
  j["nets"] = nets;
  j["rng"] = c.rng;
  j["virtio_discovery"] = c.virtio_discovery == VirtioDiscovery::dtb ? "dtb" : "cmdline";
  return j;
}

Result<VmConfig> vm_config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail("snapshot configuration: \"vm\" is not an object");
  VmConfig c;
  c.memory_size = TRY(field<uint64_t>(j, "memory_size"));
  if (c.memory_size == 0 || c.memory_size % kPageSize != 0)
    return fail("snapshot configuration: vm.memory_size " + std::to_string(c.memory_size) +
                " is not a positive multiple of 4 KiB");
  const std::string backing = TRY(field<std::string>(j, "memory_backing"));
  if (backing == "memfd") {
    c.backing = MemoryBacking::memfd;
  } else if (backing == "anonymous") {
    c.backing = MemoryBacking::anonymous;
  } else if (backing == "hugetlbfs") {
    c.backing = MemoryBacking::hugetlbfs;
  } else {
    return fail("snapshot configuration: unknown vm.memory_backing '" + backing + "'");
  }
  c.hugetlbfs_dir = TRY(field<std::string>(j, "hugetlbfs_dir"));
  c.vcpus = TRY(field<uint32_t>(j, "vcpus"));
  if (c.vcpus == 0) return fail("snapshot configuration: vm.vcpus is 0");
  const auto boot = TRY(field<nlohmann::json>(j, "boot"));
  if (boot.contains("kernel")) {
    KernelBoot k;
    k.kernel = TRY(field<std::string>(boot, "kernel", "vm.boot"));
    k.initrd = TRY(field<std::string>(boot, "initrd", "vm.boot"));
    k.cmdline = TRY(field<std::string>(boot, "cmdline", "vm.boot"));
    c.boot = k;
  } else {
    c.boot = ImageBoot{TRY(field<std::string>(boot, "image", "vm.boot"))};
  }
  c.guest_params = TRY(field<std::vector<std::string>>(j, "guest_params"));
  for (const auto& d : TRY(field<std::vector<nlohmann::json>>(j, "disks"))) {
    DiskConfig disk;
    disk.path = TRY(field<std::string>(d, "path", "vm.disks[]"));
    disk.readonly = TRY(field<bool>(d, "readonly", "vm.disks[]"));
    disk.direct = TRY(field<bool>(d, "direct", "vm.disks[]"));
    disk.serial = TRY(field<std::string>(d, "serial", "vm.disks[]"));
    c.disks.push_back(disk);
  }
  for (const auto& n : TRY(field<std::vector<nlohmann::json>>(j, "nets"))) {
    NetConfig net;
    net.tap = TRY(field<std::string>(n, "tap", "vm.nets[]"));
    net.mac = TRY(field<std::string>(n, "mac", "vm.nets[]"));
    c.nets.push_back(net);
  }
  c.rng = TRY(field<bool>(j, "rng"));
  const std::string discovery = TRY(field<std::string>(j, "virtio_discovery"));
  if (discovery != "dtb" && discovery != "cmdline")
    return fail("snapshot configuration: unknown vm.virtio_discovery '" + discovery + "'");
  c.virtio_discovery = discovery == "dtb" ? VirtioDiscovery::dtb : VirtioDiscovery::cmdline;
  return c;
}

}  // namespace godwit
