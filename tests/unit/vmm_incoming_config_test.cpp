// godwit --incoming on the command line: the address forms accepted, the
// ones refused (naming what is wrong), no boot source needed, and the
// combinations that make no sense (--restore).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vmm/config.h"

namespace godwit {
namespace {

using ::testing::HasSubstr;

Result<ParsedCommandLine> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "godwit");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

TEST(IncomingCommandLine, TcpWithoutBootSourceTakesTheMachineOptions) {
  auto r = parse({"--incoming", "tcp:0.0.0.0:4444", "--memory", "256M", "--vcpus", "2", "--rng",
                  "--disk", "path=a.img"});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->config);
  EXPECT_FALSE(r->restore);
  EXPECT_EQ(r->incoming, "tcp:0.0.0.0:4444");
  EXPECT_EQ(r->config->memory_size, 256 * kMiB);
  EXPECT_EQ(r->config->vcpus, 2u);
  EXPECT_TRUE(r->config->rng);
  ASSERT_EQ(r->config->disks.size(), 1u);
  // Nothing is loaded: the boot source is an empty image spec.
  ASSERT_TRUE(std::holds_alternative<ImageBoot>(r->config->boot));
  EXPECT_EQ(std::get<ImageBoot>(r->config->boot).spec, "");
}

TEST(IncomingCommandLine, UnixSocketAndIpv6AndABootSourceAreAccepted) {
  auto u = parse({"--incoming", "unix:/tmp/godwit-mig.sock"});
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->incoming, "unix:/tmp/godwit-mig.sock");

  auto v6 = parse({"--incoming", "tcp:[::1]:0"});
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->incoming, "tcp:[::1]:0");

  // The source's own command line may be reused: --image is accepted (never loaded).
  auto same = parse({"--incoming", "tcp:localhost:65535", "--image", "ab.img"});
  ASSERT_TRUE(same) << same.error().message;
  EXPECT_EQ(std::get<ImageBoot>(same->config->boot).spec, "ab.img");
}

TEST(IncomingCommandLine, NoIncomingLeavesItEmpty) {
  auto r = parse({"--image", "ab.img"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->incoming, "");
}

TEST(IncomingCommandLine, BadAddressesAreRefusedSayingWhy) {
  struct Case {
    const char* uri;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {"http://host:80", "expected tcp:HOST:PORT or unix:PATH"},
           {"tcp:", "no port"},
           {"tcp:host", "no port"},
           {"tcp::4444", "empty host"},
           {"tcp:host:", "is not 0..65535"},
           {"tcp:host:65536", "is not 0..65535"},
           {"tcp:host:44x", "is not 0..65535"},
           {"tcp:host:-1", "is not 0..65535"},
           {"tcp:::1:4444", "[ADDRESS]"},
           {"unix:", "empty path"},
       }) {
    auto r = parse({"--incoming", c.uri});
    ASSERT_FALSE(r) << c.uri << " was accepted";
    EXPECT_THAT(r.error().message, HasSubstr(c.says)) << c.uri;
    EXPECT_THAT(r.error().message, HasSubstr(c.uri)) << "the message names the value";
  }
  const std::string long_path = "unix:/" + std::string(107, 'p');
  auto r = parse({"--incoming", long_path.c_str()});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("107 bytes"));
}

TEST(IncomingCommandLine, WithRestoreIsAUsageError) {
  auto r = parse({"--incoming", "tcp:127.0.0.1:4444", "--restore", "/var/tmp/snap"});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("--incoming cannot be combined with --restore"));
}

TEST(IncomingCommandLine, RestoreOnlyOptionsStayRefused) {
  auto paused = parse({"--incoming", "tcp:127.0.0.1:4444", "--paused"});
  ASSERT_FALSE(paused);
  EXPECT_THAT(paused.error().message, HasSubstr("--paused needs --restore"));
  auto initrd = parse({"--incoming", "tcp:127.0.0.1:4444", "--initrd", "x.cpio"});
  ASSERT_FALSE(initrd);
  EXPECT_THAT(initrd.error().message, HasSubstr("--initrd needs --kernel"));
}

TEST(IncomingCommandLine, WithoutIncomingABootSourceIsStillRequired) {
  auto r = parse({"--memory", "64M"});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("exactly one boot source"));
}

TEST(IncomingCommandLine, HelpMentionsIncomingAndTheSourceAfterwards) {
  auto r = parse({"--help"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_THAT(r->message, HasSubstr("--incoming"));
  EXPECT_THAT(r->message, HasSubstr("stays paused"));
}

}  // namespace
}  // namespace godwit
