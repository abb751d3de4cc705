// Command-line parsing of godwit: sizes, serial specs, boot sources and every
// bad-input message.
#include <gtest/gtest.h>

#include <vector>

#include "vmm/config.h"

namespace godwit {
namespace {

Result<ParsedCommandLine> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "godwit");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

TEST(ParseSize, AcceptsSuffixes) {
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("512M").value(), 512 * kMiB);
  EXPECT_EQ(parse_size("1G").value(), kGiB);
  EXPECT_EQ(parse_size("2GiB").value(), 2 * kGiB);
  EXPECT_EQ(parse_size("64k").value(), 64 * 1024u);
}

TEST(ParseSize, RejectsGarbage) {
  EXPECT_FALSE(parse_size("").has_value());
  EXPECT_FALSE(parse_size("G").has_value());
  EXPECT_FALSE(parse_size("12X").has_value());
  EXPECT_FALSE(parse_size("-1G").has_value());
  EXPECT_FALSE(parse_size("99999999999999T").has_value());
}

TEST(ParseSerial, Kinds) {
  EXPECT_EQ(parse_serial("stdout")->kind, SerialConfig::Kind::stdout_);
  EXPECT_EQ(parse_serial("none")->kind, SerialConfig::Kind::none);
  auto f = parse_serial("file:/tmp/x");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, SerialConfig::Kind::file);
  EXPECT_EQ(f->path, "/tmp/x");
  EXPECT_EQ(parse_serial("unix:/tmp/s")->kind, SerialConfig::Kind::unix_socket);
  EXPECT_FALSE(parse_serial("file:").has_value());
  EXPECT_FALSE(parse_serial("tcp:1.2.3.4").has_value());
}

TEST(CommandLine, ImageBootWithParams) {
  auto r = parse({"--image", "ab.img", "--memory", "1G", "--vcpus", "2", "--guest-param",
                  "ab.pages=256,ab.delay=0", "--guest-param", "ab.once=1"});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->config);
  EXPECT_EQ(r->config->memory_size, kGiB);
  EXPECT_EQ(r->config->vcpus, 2u);
  EXPECT_EQ(std::get<ImageBoot>(r->config->boot).spec, "ab.img");
  EXPECT_EQ(r->config->guest_params,
            (std::vector<std::string>{"ab.pages=256", "ab.delay=0", "ab.once=1"}));
}

TEST(CommandLine, VirtioDevicesInOrder) {
  auto r = parse({"--image", "x.img", "--disk", "path=a.img,readonly=on,serial=disk-a", "--disk",
                  "b.img,direct=on", "--net", "tap=tap0,mac=52:54:00:12:34:56", "--rng"});
  ASSERT_TRUE(r) << r.error().message;
  const VmConfig& c = *r->config;
  ASSERT_EQ(c.disks.size(), 2u);
  EXPECT_EQ(c.disks[0].path, "a.img");
  EXPECT_TRUE(c.disks[0].readonly);
  EXPECT_FALSE(c.disks[0].direct);
  EXPECT_EQ(c.disks[0].serial, "disk-a");
  EXPECT_EQ(c.disks[1].path, "b.img");
  EXPECT_FALSE(c.disks[1].readonly);
  EXPECT_TRUE(c.disks[1].direct);
  ASSERT_EQ(c.nets.size(), 1u);
  EXPECT_EQ(c.nets[0].tap, "tap0");
  EXPECT_EQ(c.nets[0].mac, "52:54:00:12:34:56");
  EXPECT_TRUE(c.rng);
}

TEST(CommandLine, NoVirtioDevicesByDefault) {
  auto r = parse({"--image", "x.img"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->config->disks.empty());
  EXPECT_TRUE(r->config->nets.empty());
  EXPECT_FALSE(r->config->rng);
}

TEST(CommandLine, BadDiskAndNetSpecsAreRefusedWithTheReason) {
  struct Case {
    std::vector<const char*> args;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{"--disk", "readonly=on"}, "path=FILE is required"},
      {{"--disk", "path=a,readonly=maybe"}, "expected on or off"},
      {{"--disk", "path=a,colour=red"}, "unknown key 'colour'"},
      {{"--disk", "path=a,,readonly=on"}, "empty item"},
      {{"--disk", "path=a,path=b"}, "path given twice"},
      {{"--disk", "path=a,serial=123456789012345678901"}, "at most 20 bytes"},
      {{"--disk", "path="}, "is not KEY=VALUE"},
      {{"--net", "mac=52:54:00:12:34:56"}, "tap=NAME is required"},
      {{"--net", "tap=averyveryverylongname"}, "at most 15 bytes"},
      {{"--net", "tap0"}, "unknown key 'tap0'"},
      {{"--net", "tap=t0,mac=01:00:5e:00:00:01"}, "multicast"},
      {{"--net", "tap=t0,mac=52:54:00:12:34"}, "invalid --net mac"},
  };
  for (const Case& c : cases) {
    std::vector<const char*> args = {"--image", "x.img"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = parse(args);
    ASSERT_FALSE(r) << c.args[1];
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << c.args[1] << ": " << r.error().message;
  }
}

TEST(CommandLine, KernelBoot) {
  auto r = parse({"--kernel", "bzImage", "--initrd", "rd", "--cmdline", "console=ttyS0 quiet"});
  ASSERT_TRUE(r) << r.error().message;
  const auto& k = std::get<KernelBoot>(r->config->boot);
  EXPECT_EQ(k.kernel, "bzImage");
  EXPECT_EQ(k.initrd, "rd");
  EXPECT_EQ(k.cmdline, "console=ttyS0 quiet");
}

TEST(CommandLine, HelpIsNotAConfig) {
  auto r = parse({"--help"});
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->config);
  EXPECT_NE(r->message.find("--image"), std::string::npos);
  EXPECT_NE(r->message.find("--api-sock"), std::string::npos);
}

void expect_error(std::vector<const char*> args, const std::string& needle) {
  auto r = parse(args);
  ASSERT_FALSE(r) << "accepted bad input containing " << needle;
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(CommandLine, BadInputGetsClearErrors) {
  expect_error({"--image", "x", "--memory", "0"}, "greater than 0");
  expect_error({"--image", "x", "--memory", "1000"}, "multiple of 4 KiB");
  expect_error({"--image", "x", "--memory", "lots"}, "--memory");
  expect_error({"--image", "x", "--vcpus", "0"}, "--vcpus");
  expect_error({"--image", "x", "--vcpus", "300"}, "--vcpus");
  expect_error({}, "boot source");
  expect_error({"--image", "x", "--kernel", "y"}, "boot source");
  expect_error({"--image", "x", "--initrd", "y"}, "--initrd needs --kernel");
  expect_error({"--image", "x", "--serial", "tcp:1"}, "--serial");
  expect_error({"--image", "x", "--memory-backing", "disk"}, "--memory-backing");
  expect_error({"--image", "x", "--guest-param", "pages=3"}, "NAME.KEY=VALUE");
  expect_error({"--image", "x", "--frobnicate"}, "frobnicate");
}

}  // namespace
}  // namespace godwit
