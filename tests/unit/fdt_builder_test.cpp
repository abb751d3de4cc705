// build_fdt(): the generated blob, parsed back with libfdt's read API, holds
// exactly the nodes and property values of the machine description (issue 3,
// item 2: "unit tests parse the generated blob back").
#include "vmm/fdt/fdt_builder.h"

#include <gtest/gtest.h>
#include <libfdt.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "vmm/fdt/machine_description.h"
#include "vmm/platform.h"

namespace godwit::fdt {
namespace {

/// Read access to one parsed blob; every lookup failure is a test failure.
class ParsedTree {
 public:
  explicit ParsedTree(const std::vector<uint8_t>& blob) : fdt_(blob.data()) {
    EXPECT_EQ(fdt_check_header(fdt_), 0);
    EXPECT_EQ(fdt_totalsize(fdt_), blob.size());
  }

  [[nodiscard]] int node(const std::string& path) const {
    int offset = fdt_path_offset(fdt_, path.c_str());
    EXPECT_GE(offset, 0) << "node " << path << ": " << fdt_strerror(offset);
    return offset;
  }
  [[nodiscard]] bool has_node(const std::string& path) const {
    return fdt_path_offset(fdt_, path.c_str()) >= 0;
  }
  /// Raw bytes of a property; empty (and a failure) when missing.
  [[nodiscard]] std::string bytes(const std::string& path, const char* name) const {
    int length = 0;
    const void* value = fdt_getprop(fdt_, node(path), name, &length);
    EXPECT_NE(value, nullptr) << path << " has no property " << name;
    if (value == nullptr) return {};
    return std::string(static_cast<const char*>(value), static_cast<size_t>(length));
  }
  /// A string property (must be NUL-terminated).
  [[nodiscard]] std::string string(const std::string& path, const char* name) const {
    std::string raw = bytes(path, name);
    EXPECT_FALSE(raw.empty()) << path << "/" << name;
    EXPECT_EQ(raw.back(), '\0') << path << "/" << name << " is not NUL-terminated";
    return raw.empty() ? raw : raw.substr(0, raw.size() - 1);
  }
  /// A property as big-endian 32-bit cells.
  [[nodiscard]] std::vector<uint32_t> cells(const std::string& path, const char* name) const {
    std::string raw = bytes(path, name);
    EXPECT_EQ(raw.size() % 4, 0u) << path << "/" << name;
    std::vector<uint32_t> out;
    for (size_t i = 0; i + 4 <= raw.size(); i += 4) {
      fdt32_t cell;
      std::memcpy(&cell, raw.data() + i, 4);
      out.push_back(fdt32_to_cpu(cell));
    }
    return out;
  }
  /// "reg" with two address and two size cells as {address, size}.
  [[nodiscard]] std::pair<uint64_t, uint64_t> reg(const std::string& path) const {
    std::vector<uint32_t> c = cells(path, "reg");
    EXPECT_EQ(c.size(), 4u) << path << "/reg";
    if (c.size() != 4) return {};
    return {uint64_t{c[0]} << 32 | c[1], uint64_t{c[2]} << 32 | c[3]};
  }
  /// Names of the direct children of `path`.
  [[nodiscard]] std::set<std::string> children(const std::string& path) const {
    std::set<std::string> names;
    int child;
    fdt_for_each_subnode(child, fdt_, node(path)) names.insert(fdt_get_name(fdt_, child, nullptr));
    return names;
  }
  /// Names of the properties of `path`.
  [[nodiscard]] std::set<std::string> properties(const std::string& path) const {
    std::set<std::string> names;
    int property;
    fdt_for_each_property_offset(property, fdt_, node(path)) {
      const char* name = nullptr;
      fdt_getprop_by_offset(fdt_, property, &name, nullptr);
      names.insert(name);
    }
    return names;
  }

 private:
  const void* fdt_;
};

struct Shape {
  uint32_t vcpus;
  uint64_t ram;
  int virtio_devices;
};

std::string shape_name(const testing::TestParamInfo<Shape>& info) {
  return std::to_string(info.param.vcpus) + "cpu_" + std::to_string(info.param.ram / kMiB) +
         "mib_" + std::to_string(info.param.virtio_devices) + "virtio";
}

class FdtShapeTest : public testing::TestWithParam<Shape> {
 protected:
  MachineDescription machine() const {
    std::vector<RegionSpec> layout = x86_memory_layout(GetParam().ram);
    MachineDescription m = describe_machine(layout, GetParam().vcpus);
    const char* types[] = {"block", "net", "rng"};
    for (int i = 0; i < GetParam().virtio_devices; ++i)
      EXPECT_TRUE(add_virtio_mmio_device(m, types[i % 3]).has_value());
    return m;
  }
};

TEST_P(FdtShapeTest, RootAndChosen) {
  MachineDescription m = machine();
  m.bootargs = "console=ttyS0 panic=-1";
  auto blob = build_fdt(m);
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  EXPECT_EQ(tree.string("/", "compatible"), "godwit,microvm");
  EXPECT_EQ(tree.string("/", "model"), "godwit microVM");
  EXPECT_EQ(tree.cells("/", "#address-cells"), std::vector<uint32_t>{2});
  EXPECT_EQ(tree.cells("/", "#size-cells"), std::vector<uint32_t>{2});
  EXPECT_EQ(tree.cells("/", "interrupt-parent"), std::vector<uint32_t>{kIoapicPhandle});
  EXPECT_EQ(tree.properties("/"), (std::set<std::string>{"compatible", "model", "#address-cells",
                                                         "#size-cells", "interrupt-parent"}));
  EXPECT_EQ(tree.string("/chosen", "bootargs"), "console=ttyS0 panic=-1");
  EXPECT_EQ(tree.properties("/chosen"), std::set<std::string>{"bootargs"});
}

TEST_P(FdtShapeTest, ExactlyTheExpectedTopLevelNodes) {
  MachineDescription m = machine();
  auto blob = build_fdt(m);
  ASSERT_TRUE(blob) << blob.error().message;
  std::set<std::string> expected = {"chosen",
                                    "cpus",
                                    "interrupt-controller@fec00000",
                                    "interrupt-controller@fee00000",
                                    "serial@3f8",
                                    "testdev@d0000000",
                                    "memory@0"};
  if (GetParam().ram > 3 * kGiB) expected.insert("memory@100000000");
  const char* virtio[] = {"virtio_mmio@d0001000", "virtio_mmio@d0002000", "virtio_mmio@d0003000"};
  for (int i = 0; i < GetParam().virtio_devices; ++i) expected.insert(virtio[i]);
  EXPECT_EQ(ParsedTree(*blob).children("/"), expected);
}

TEST_P(FdtShapeTest, MemoryNodesMatchTheLayout) {
  MachineDescription m = machine();
  auto blob = build_fdt(m);
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  uint64_t low = std::min<uint64_t>(GetParam().ram, 3 * kGiB);
  EXPECT_EQ(tree.string("/memory@0", "device_type"), "memory");
  EXPECT_EQ(tree.reg("/memory@0"), std::make_pair(uint64_t{0}, low));
  EXPECT_EQ(tree.properties("/memory@0"), (std::set<std::string>{"device_type", "reg"}));
  if (GetParam().ram > 3 * kGiB) {
    EXPECT_EQ(tree.string("/memory@100000000", "device_type"), "memory");
    EXPECT_EQ(tree.reg("/memory@100000000"),
              std::make_pair(uint64_t{4} * kGiB, GetParam().ram - 3 * kGiB));
  } else {
    EXPECT_FALSE(tree.has_node("/memory@100000000"));
  }
}

TEST_P(FdtShapeTest, OneCpuNodePerVcpuWithItsApicId) {
  auto blob = build_fdt(machine());
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  EXPECT_EQ(tree.cells("/cpus", "#address-cells"), std::vector<uint32_t>{1});
  EXPECT_EQ(tree.cells("/cpus", "#size-cells"), std::vector<uint32_t>{0});
  std::set<std::string> expected;
  for (uint32_t i = 0; i < GetParam().vcpus; ++i) {
    std::string name = "cpu@" + std::to_string(i);  // single digit: same in hex
    expected.insert(name);
    EXPECT_EQ(tree.string("/cpus/" + name, "device_type"), "cpu");
    EXPECT_EQ(tree.cells("/cpus/" + name, "reg"), std::vector<uint32_t>{i});
    EXPECT_EQ(tree.properties("/cpus/" + name), (std::set<std::string>{"device_type", "reg"}));
  }
  EXPECT_EQ(tree.children("/cpus"), expected);
}

TEST_P(FdtShapeTest, InterruptControllers) {
  auto blob = build_fdt(machine());
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  const std::string ioapic = "/interrupt-controller@fec00000";
  EXPECT_EQ(tree.string(ioapic, "compatible"), "intel,ce4100-ioapic");
  EXPECT_EQ(tree.reg(ioapic), std::make_pair(uint64_t{0xfec00000}, uint64_t{0x1000}));
  EXPECT_EQ(tree.bytes(ioapic, "interrupt-controller"), "");
  EXPECT_EQ(tree.cells(ioapic, "#interrupt-cells"), std::vector<uint32_t>{2});
  EXPECT_EQ(tree.cells(ioapic, "phandle"), std::vector<uint32_t>{kIoapicPhandle});
  EXPECT_EQ(tree.properties(ioapic),
            (std::set<std::string>{"compatible", "reg", "interrupt-controller", "#interrupt-cells",
                                   "phandle"}));
  const std::string lapic = "/interrupt-controller@fee00000";
  EXPECT_EQ(tree.string(lapic, "compatible"), "intel,ce4100-lapic");
  EXPECT_EQ(tree.reg(lapic), std::make_pair(uint64_t{0xfee00000}, uint64_t{0x1000}));
  EXPECT_EQ(tree.cells(lapic, "phandle"), std::vector<uint32_t>{kLapicPhandle});
  // The phandle the devices name resolves to the IOAPIC node.
  EXPECT_EQ(fdt_node_offset_by_phandle(blob->data(), kIoapicPhandle), tree.node(ioapic));
}

TEST_P(FdtShapeTest, SerialAndTestdev) {
  auto blob = build_fdt(machine());
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  EXPECT_EQ(tree.string("/serial@3f8", "compatible"), "godwit,8250-pio");
  EXPECT_EQ(tree.string("/serial@3f8", "device_type"), "serial");
  EXPECT_EQ(tree.reg("/serial@3f8"), std::make_pair(uint64_t{0x3f8}, uint64_t{8}));
  EXPECT_EQ(tree.cells("/serial@3f8", "interrupts"), (std::vector<uint32_t>{4, 0}));
  EXPECT_EQ(tree.cells("/serial@3f8", "interrupt-parent"), std::vector<uint32_t>{kIoapicPhandle});
  EXPECT_EQ(tree.cells("/serial@3f8", "clock-frequency"), std::vector<uint32_t>{1843200});
  EXPECT_EQ(tree.string("/testdev@d0000000", "compatible"), "godwit,testdev");
  EXPECT_EQ(tree.reg("/testdev@d0000000"), std::make_pair(uint64_t{0xd0000000}, uint64_t{0x1000}));
}

TEST_P(FdtShapeTest, VirtioMmioNodes) {
  MachineDescription m = machine();
  auto blob = build_fdt(m);
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  ASSERT_EQ(m.virtio_devices.size(), static_cast<size_t>(GetParam().virtio_devices));
  const char* types[] = {"block", "net", "rng"};
  for (int i = 0; i < GetParam().virtio_devices; ++i) {
    uint64_t base = 0xd0001000 + uint64_t(i) * 0x1000;
    std::string path = virtio_mmio_node_path(m.virtio_devices[i]);
    EXPECT_EQ(path, "/virtio_mmio@d000" + std::to_string(i + 1) + "000");
    EXPECT_EQ(tree.string(path, "compatible"), "virtio,mmio");
    EXPECT_EQ(tree.reg(path), std::make_pair(base, uint64_t{0x1000}));
    EXPECT_EQ(tree.cells(path, "interrupts"), (std::vector<uint32_t>{uint32_t(5 + i), 0}));
    EXPECT_EQ(tree.cells(path, "interrupt-parent"), std::vector<uint32_t>{kIoapicPhandle});
    EXPECT_EQ(tree.string(path, "godwit,device-type"), types[i]);
    EXPECT_EQ(tree.properties(path),
              (std::set<std::string>{"compatible", "reg", "interrupts", "interrupt-parent",
                                     "godwit,device-type"}));
  }
  // A guest finds them by compatible, in address order.
  int count = 0;
  for (int offset = fdt_node_offset_by_compatible(blob->data(), -1, "virtio,mmio"); offset >= 0;
       offset = fdt_node_offset_by_compatible(blob->data(), offset, "virtio,mmio"))
    ++count;
  EXPECT_EQ(count, GetParam().virtio_devices);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FdtShapeTest,
                         testing::Values(Shape{1, 512 * kMiB, 0}, Shape{4, 512 * kMiB, 3},
                                         Shape{1, 5 * kGiB, 3}, Shape{4, 5 * kGiB, 0}),
                         shape_name);

TEST(FdtBuilder, NoBootargsLeavesChosenEmpty) {
  std::vector<RegionSpec> layout = x86_memory_layout(64 * kMiB);
  auto blob = build_fdt(describe_machine(layout, 1));
  ASSERT_TRUE(blob) << blob.error().message;
  ParsedTree tree(*blob);
  EXPECT_TRUE(tree.has_node("/chosen"));
  EXPECT_TRUE(tree.properties("/chosen").empty());
}

TEST(FdtBuilder, LevelTriggeredDeviceCarriesItsSense) {
  std::vector<RegionSpec> layout = x86_memory_layout(64 * kMiB);
  MachineDescription m = describe_machine(layout, 1);
  m.virtio_devices.push_back({.base = 0xd0001000,
                              .size = 0x1000,
                              .irq = 10,
                              .sense = InterruptSense::level_high,
                              .type = "block"});
  auto blob = build_fdt(m);
  ASSERT_TRUE(blob) << blob.error().message;
  EXPECT_EQ(ParsedTree(*blob).cells("/virtio_mmio@d0001000", "interrupts"),
            (std::vector<uint32_t>{10, 2}));
}

TEST(FdtBuilder, ManyVcpusGrowTheBufferAndNameCpusInHex) {
  std::vector<RegionSpec> layout = x86_memory_layout(64 * kMiB);
  MachineDescription m = describe_machine(layout, kMaxVcpus);
  m.bootargs = std::string(6000, 'x');  // forces more than the first 4 KiB buffer
  auto blob = build_fdt(m);
  ASSERT_TRUE(blob) << blob.error().message;
  EXPECT_GT(blob->size(), 4096u);
  ParsedTree tree(*blob);
  EXPECT_EQ(tree.children("/cpus").size(), kMaxVcpus);
  EXPECT_EQ(tree.cells("/cpus/cpu@fd", "reg"), std::vector<uint32_t>{253});
  EXPECT_EQ(tree.string("/chosen", "bootargs"), m.bootargs);
}

TEST(FdtBuilder, InvalidDescriptionIsRefusedWithTheReason) {
  std::vector<RegionSpec> layout = x86_memory_layout(64 * kMiB);
  MachineDescription m = describe_machine(layout, 0);
  auto blob = build_fdt(m);
  ASSERT_FALSE(blob);
  EXPECT_NE(blob.error().message.find("building the FDT"), std::string::npos);
  EXPECT_NE(blob.error().message.find("0 vCPUs"), std::string::npos) << blob.error().message;
}

TEST(FdtBuilder, SameDescriptionSameBytes) {
  std::vector<RegionSpec> layout = x86_memory_layout(5 * kGiB);
  MachineDescription m = describe_machine(layout, 2);
  ASSERT_TRUE(add_virtio_mmio_device(m, "block"));
  auto a = build_fdt(m);
  auto b = build_fdt(m);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
}

}  // namespace
}  // namespace godwit::fdt
