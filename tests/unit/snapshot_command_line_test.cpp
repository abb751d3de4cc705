// godwit --restore on the command line (vmm/config.h): the defaults, lazy
// memory, --paused, the options a restoring process may still choose (API
// socket, console), every option that would redefine the snapshot's VM
// refused by name, the restore-only options refused without --restore, and
// --help.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "vmm/config.h"

namespace godwit {
namespace {

using ::testing::HasSubstr;

Result<ParsedCommandLine> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "godwit");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

std::string parse_error(std::vector<const char*> args) {
  auto parsed = parse(std::move(args));
  return parsed ? std::string("(accepted)") : parsed.error().message;
}

TEST(RestoreCommandLine, DefaultsAreEagerRunningNoSocketAndSerialOnStdout) {
  auto parsed = parse({"--restore", "/var/snap"});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->config);
  ASSERT_TRUE(parsed->restore);
  const RestoreRequest& r = *parsed->restore;
  EXPECT_EQ(r.dir, "/var/snap");
  EXPECT_EQ(r.memory, RestoreMemory::eager);
  EXPECT_FALSE(r.paused);
  EXPECT_EQ(r.api_sock, "");
  EXPECT_EQ(r.serial.kind, SerialConfig::Kind::stdout_);
  EXPECT_EQ(parsed->message, "");
}

TEST(RestoreCommandLine, LazyPausedSocketAndSerialAreTaken) {
  auto parsed = parse({"--restore", "snap", "--restore-memory", "lazy", "--paused", "--api-sock",
                       "/tmp/g.sock", "--serial", "file:/tmp/console.log"});
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_TRUE(parsed->restore);
  const RestoreRequest& r = *parsed->restore;
  EXPECT_EQ(r.dir, "snap");
  EXPECT_EQ(r.memory, RestoreMemory::lazy);
  EXPECT_TRUE(r.paused);
  EXPECT_EQ(r.api_sock, "/tmp/g.sock");
  EXPECT_EQ(r.serial.kind, SerialConfig::Kind::file);
  EXPECT_EQ(r.serial.path, "/tmp/console.log");

  auto eager = parse({"--restore-memory", "eager", "--restore", "snap", "--serial", "none"});
  ASSERT_TRUE(eager) << eager.error().message;
  EXPECT_EQ(eager->restore->memory, RestoreMemory::eager);
  EXPECT_EQ(eager->restore->serial.kind, SerialConfig::Kind::none);

  auto unix_console = parse({"--restore=snap", "--serial", "unix:/tmp/c.sock"});
  ASSERT_TRUE(unix_console) << unix_console.error().message;
  EXPECT_EQ(unix_console->restore->dir, "snap");
  EXPECT_EQ(unix_console->restore->serial.kind, SerialConfig::Kind::unix_socket);
}

TEST(RestoreCommandLine, EveryOptionThatDefinesTheVmIsRefusedByName) {
  struct Case {
    std::vector<const char*> option;
    std::string name;
  };
  for (const Case& c : std::vector<Case>{
           {{"--memory", "1G"}, "--memory"},
           {{"-m", "512M"}, "--memory"},  // the default value, but given explicitly
           {{"--memory-backing", "anonymous"}, "--memory-backing"},
           {{"--vcpus", "2"}, "--vcpus"},
           {{"--vcpus", "1"}, "--vcpus"},
           {{"--kernel", "bzImage"}, "--kernel"},
           {{"--initrd", "initrd.img"}, "--initrd"},
           {{"--cmdline", "console=ttyS0"}, "--cmdline"},
           {{"--image", "guests/ab.img"}, "--image"},
           {{"--guest-param", "ab.pages=4"}, "--guest-param"},
           {{"--disk", "path=disk.img"}, "--disk"},
           {{"--net", "tap=tap0"}, "--net"},
           {{"--rng"}, "--rng"},
           {{"--virtio-discovery", "cmdline"}, "--virtio-discovery"},
       }) {
    SCOPED_TRACE(c.name);
    for (bool option_first : {false, true}) {
      std::vector<const char*> args = {"--restore", "/var/snap"};
      args.insert(option_first ? args.begin() : args.end(), c.option.begin(), c.option.end());
      EXPECT_EQ(parse_error(args),
                c.name + " cannot be combined with --restore: the snapshot defines the VM");
    }
  }
}

TEST(RestoreCommandLine, RestoreOnlyOptionsNeedRestore) {
  EXPECT_EQ(parse_error({"--image", "x.img", "--paused"}), "--paused needs --restore");
  EXPECT_EQ(parse_error({"--image", "x.img", "--restore-memory", "lazy"}),
            "--restore-memory needs --restore");
  // Even the default value, given explicitly, says the user expected a restore.
  EXPECT_EQ(parse_error({"--image", "x.img", "--restore-memory", "eager"}),
            "--restore-memory needs --restore");
  EXPECT_EQ(parse_error({"--paused"}), "--paused needs --restore");
}

TEST(RestoreCommandLine, BadValuesAreRefused) {
  EXPECT_EQ(parse_error({"--restore", "snap", "--restore-memory", "later"}),
            "invalid --restore-memory 'later': expected eager or lazy");
  EXPECT_EQ(parse_error({"--restore", "snap", "--restore-memory", "LAZY"}),
            "invalid --restore-memory 'LAZY': expected eager or lazy");
  EXPECT_EQ(parse_error({"--restore", ""}), "--restore: empty directory name");
  EXPECT_THAT(parse_error({"--restore", "snap", "--serial", "tty"}), HasSubstr("invalid --serial"));
  EXPECT_THAT(parse_error({"--restore"}), HasSubstr("restore"));
  EXPECT_THAT(parse_error({"--restore", "a", "--restore", "b"}), HasSubstr("restore"));
}

TEST(RestoreCommandLine, HelpDescribesRestore) {
  auto parsed = parse({"--help"});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->restore);
  EXPECT_FALSE(parsed->config);
  EXPECT_THAT(parsed->message, HasSubstr("--restore"));
  EXPECT_THAT(parsed->message, HasSubstr("--restore-memory"));
  EXPECT_THAT(parsed->message, HasSubstr("lazy"));
  EXPECT_THAT(parsed->message, HasSubstr("--paused"));
  EXPECT_THAT(parsed->message, HasSubstr("godwit --restore "));  // an example
  // --help wins over a restore, as over a boot.
  auto both = parse({"--restore", "snap", "--help"});
  ASSERT_TRUE(both);
  EXPECT_FALSE(both->restore);
  EXPECT_THAT(both->message, HasSubstr("Usage: godwit"));
}

}  // namespace
}  // namespace godwit
