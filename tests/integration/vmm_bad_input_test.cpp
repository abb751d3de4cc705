// Bad input to godwit gets a clear message and a non-zero status, never a
// crash: missing or corrupt boot files, impossible sizes and counts.
#include <gtest/gtest.h>

#include <fstream>

#include "godwit_process.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;

struct Outcome {
  int status;
  std::string err;
};

Outcome run(std::vector<std::string> args) {
  TempDir dir;
  std::vector<std::string> argv{build_path("bin/godwit")};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv, dir.file("out"), dir.file("err"));
  auto st = p.wait(60s);
  return {st.value_or(-1), p.stderr_text()};
}

void expect_refused(std::vector<std::string> args, const std::string& needle, int status) {
  auto o = run(args);
  EXPECT_EQ(o.status, status) << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << "stderr: " << o.err;
}

TEST(BadInput, CommandLineErrors) {
  expect_refused({"--image", "x.img", "--memory", "0"}, "greater than 0", 2);
  expect_refused({"--image", "x.img", "--vcpus", "0"}, "--vcpus", 2);
  expect_refused({"--memory", "1G"}, "boot source", 2);
  expect_refused({"--image", "x.img", "--bogus"}, "bogus", 2);
}

TEST(BadInput, MissingOrCorruptBootFiles) {
  GODWIT_REQUIRE_KVM();
  TempDir dir;
  expect_refused({"--image", dir.file("missing.img")}, "missing.img", 1);
  expect_refused({"--kernel", dir.file("missing-kernel")}, "missing-kernel", 1);
  std::string junk = dir.file("junk");
  std::ofstream(junk) << std::string(8192, 'z');
  expect_refused({"--kernel", junk}, "not a bzImage or ELF", 1);
  std::string empty = dir.file("empty.img");
  std::ofstream(empty).flush();
  expect_refused({"--image", empty}, "empty", 1);
}

TEST(BadInput, MemoryLargerThanTheHost) {
  GODWIT_REQUIRE_KVM();
  expect_refused({"--image", probe("hello_real"), "--memory", "64T"}, "exceeds host memory", 1);
}

TEST(BadInput, UnknownGuestParameter) {
  GODWIT_REQUIRE_KVM();
  expect_refused({"--image", probe("hello_real"), "--guest-param", "ab.pages=4"}, "--guest-param",
                 1);
}

TEST(BadInput, HelpTellsTheOptions) {
  auto o = run({"--help"});
  EXPECT_EQ(o.status, 0);
}

}  // namespace
}  // namespace godwit::test
