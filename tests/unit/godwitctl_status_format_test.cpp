// godwitctl's text rendering of GET /vm: sizes, regions, unknown keys.
#include <gtest/gtest.h>

#include "tools/godwitctl/status_format.h"

namespace godwit::ctl {
namespace {

TEST(GodwitctlStatusFormat, HumanSizes) {
  EXPECT_EQ(human_size(0), "0 B");
  EXPECT_EQ(human_size(1000), "1000 B");
  EXPECT_EQ(human_size(4096), "4 KiB");
  EXPECT_EQ(human_size(uint64_t{1} << 30), "1 GiB");
  EXPECT_EQ(human_size(uint64_t{1536} << 20), "1536 MiB");
  EXPECT_EQ(human_size(123456789), "117.7 MiB");
}

TEST(GodwitctlStatusFormat, FullDocument) {
  nlohmann::json info = {
      {"state", "paused"},
      {"vcpus", 4},
      {"memory",
       {{"size_bytes", uint64_t{4} << 30},
        {"backing", "memfd"},
        {"regions",
         {{{"gpa", 0}, {"size", uint64_t{3} << 30}},
          {{"gpa", uint64_t{4} << 30}, {"size", uint64_t{1} << 30}, {"slot", 1}}}}}},
      {"uptime_s", 12},
      {"config", {{"vcpus", 4}, {"boot", {{"image", "a.img"}}}}}};
  EXPECT_EQ(format_vm_status(info),
            "state:    paused\n"
            "vcpus:    4\n"
            "memory:   4 GiB (memfd)\n"
            "  0x0-0xbfffffff  3 GiB\n"
            "  0x100000000-0x13fffffff  1 GiB  (slot 1)\n"
            "config:\n"
            "  boot: {\"image\":\"a.img\"}\n"
            "  vcpus: 4\n"
            "uptime_s: 12\n");
}

TEST(GodwitctlStatusFormat, VirtioDevicesOneBlockEach) {
  nlohmann::json info = {{"state", "running"},
                         {"virtio",
                          {{{"name", "blk0"},
                            {"type", "block"},
                            {"base", 0xd0001000u},
                            {"irq", 5},
                            {"active", true},
                            {"properties", {{"path", "/d.img"}, {"readonly", "false"}}},
                            {"counters", {{"read_bytes", 8192}, {"requests", 4}}}},
                           {{"name", "rng0"},
                            {"type", "rng"},
                            {"base", 0xd0002000u},
                            {"irq", 6},
                            {"active", false},
                            {"needs_reset", "rng0 q0: descriptor loop"},
                            {"counters", {{"bytes", 0}}}},
                           "odd"}}};
  EXPECT_EQ(format_vm_status(info),
            "state:    running\n"
            "virtio:   3 devices\n"
            "  blk0 (block) 0xd0001000 irq 5 active\n"
            "    path=/d.img readonly=false\n"
            "    read_bytes=8192 requests=4\n"
            "  rng0 (rng) 0xd0002000 irq 6 inactive NEEDS_RESET: rng0 q0: descriptor loop\n"
            "    bytes=0\n"
            "  odd\n");
  EXPECT_EQ(format_vm_status({{"state", "running"}, {"virtio", nlohmann::json::array()}}),
            "state:    running\nvirtio:   none\n");
}

TEST(GodwitctlStatusFormat, ToleratesMissingAndOddKeys) {
  EXPECT_EQ(format_vm_status(nlohmann::json::object()), "state:    unknown\n");
  EXPECT_EQ(format_vm_status({{"state", "running"}, {"memory", {{"regions", {"weird"}}}}}),
            "state:    running\n"
            "memory:   -\n"
            "  region \"weird\"\n");
  EXPECT_EQ(format_vm_status(nlohmann::json("text")), "text\n");
}

}  // namespace
}  // namespace godwit::ctl
