// Tests of the ab-check command line: exit status 0 / 1 / 2 and the counter
// report, run against dump files written to a temporary directory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;

struct CommandResult {
  int status = -1;
  std::string output;
};

/// Runs ab-check with `args` (shell words) and captures stdout + stderr.
CommandResult run_ab_check(const std::string& args) {
  const std::string command = godwit::test::build_path("bin/ab-check") + " " + args + " 2>&1";
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 512> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) result.output += buffer.data();
  const int raw = ::pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return result;
}

class AbCheckCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(godwit::test::build_path("bin/ab-check")))
      GTEST_SKIP() << "bin/ab-check is not built";
    dir_ = fs::temp_directory_path() / ("abcheck_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  /// Writes a dump whose pages' first bytes are `counters`, `offset` bytes in.
  std::string write_dump(const std::string& name, const std::vector<uint8_t>& counters,
                         size_t offset = 0) {
    std::vector<char> bytes(offset + counters.size() * 4096, 0x5a);
    for (size_t p = 0; p < counters.size(); ++p)
      bytes[offset + p * 4096] = static_cast<char>(counters[p]);
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<long>(bytes.size()));
    return path.string();
  }

  fs::path dir_;
};

TEST_F(AbCheckCli, ConsistentDumpExitsZeroAndReportsBoundary) {
  auto path = write_dump("good", {7, 7, 7, 6, 6});
  auto r = run_ab_check(path);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("counter=7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("boundary=3"), std::string::npos) << r.output;
}

TEST_F(AbCheckCli, ViolationExitsOneAndNamesThePage) {
  auto path = write_dump("bad", {7, 6, 7, 6});
  auto r = run_ab_check(path);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("bad_page=2"), std::string::npos) << r.output;
}

TEST_F(AbCheckCli, PagesLimitsTheCheckAndRejectsShortDumps) {
  auto path = write_dump("limited", {3, 3, 2, 9});
  EXPECT_EQ(run_ab_check(path + " --pages 3").status, 0);
  EXPECT_EQ(run_ab_check(path).status, 1);
  EXPECT_EQ(run_ab_check(path + " --pages 8").status, 1);
}

TEST_F(AbCheckCli, OffsetSkipsMemoryBelowTheRange) {
  auto path = write_dump("whole_ram", {1, 1, 0}, 0x100000);
  auto r = run_ab_check(path + " --offset 0x100000");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("boundary=2"), std::string::npos) << r.output;
}

TEST_F(AbCheckCli, UsageAndUnreadableFileExitTwo) {
  EXPECT_EQ(run_ab_check("").status, 2);
  EXPECT_EQ(run_ab_check("--pages").status, 2);
  EXPECT_EQ(run_ab_check((dir_ / "missing").string()).status, 2);
  auto path = write_dump("x", {1});
  EXPECT_EQ(run_ab_check(path + " --pages abc").status, 2);
}

TEST_F(AbCheckCli, EmptyDumpIsAViolation) {
  const fs::path path = dir_ / "empty";
  std::ofstream(path).close();
  EXPECT_EQ(run_ab_check(path.string()).status, 1);
}

}  // namespace
