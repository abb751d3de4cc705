// godwitctl's command logic run in-process against a real HttpServer with a
// fake VmControl: every command, --json, exit statuses, help, and one run of
// the built binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "api_test_support.h"
#include "godwitctl_test_support.h"
#include "test_util.h"
#include "tools/godwitctl/cli.h"
#include "tools/godwitctl/command.h"
#include "vmm/api/http_server.h"

namespace godwit::ctl {
namespace {

using test::CtlRun;
using test::FakeVm;
using test::run_ctl;
using test::TempSocketPath;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class GodwitctlCli : public ::testing::Test {
 protected:
  void SetUp() override {
    api::Router router;
    api::register_vm_routes(router, vm_);
    auto server = api::HttpServer::start(sock_.path(), std::move(router));
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
  }
  CtlRun ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--api-sock", sock_.path()});
    return run_ctl(args);
  }

  FakeVm vm_;
  TempSocketPath sock_;
  std::unique_ptr<api::HttpServer> server_;
};

TEST_F(GodwitctlCli, StatusPrintsStateVcpusAndMemoryLayout) {
  auto run = ctl({"status"});
  EXPECT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_NE(run.out.find("state:    running"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("vcpus:    2"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("memory:   64 KiB (memfd)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("0x0-0xffff  64 KiB"), std::string::npos) << run.out;
}

TEST_F(GodwitctlCli, StatusJsonIsTheVmmDocument) {
  for (auto args : {std::vector<std::string>{"status", "--json"},
                    std::vector<std::string>{"--json", "status"}}) {
    auto run = ctl(args);
    EXPECT_EQ(run.exit_code, kExitOk);
    auto parsed = nlohmann::json::parse(run.out, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << run.out;
    EXPECT_EQ(parsed, vm_.info());
  }
}

TEST_F(GodwitctlCli, PauseResumeShutdownAndRefusals) {
  auto paused = ctl({"pause"});
  EXPECT_EQ(paused.exit_code, kExitOk);
  EXPECT_EQ(paused.out, "VM paused (state: paused)\n");
  EXPECT_EQ(vm_.state(), "paused");

  auto refused = ctl({"pause"});
  EXPECT_EQ(refused.exit_code, kExitRefused);
  EXPECT_EQ(refused.err, "godwitctl: VM is not running (HTTP 409)\n");
  EXPECT_EQ(refused.out, "");

  auto resumed = ctl({"resume", "--json"});
  EXPECT_EQ(resumed.exit_code, kExitOk);
  EXPECT_EQ(nlohmann::json::parse(resumed.out), (nlohmann::json{{"state", "running"}}));
  EXPECT_EQ(vm_.state(), "running");

  EXPECT_EQ(ctl({"shutdown"}).exit_code, kExitOk);
  EXPECT_EQ(vm_.state(), "shutdown");
  EXPECT_EQ(ctl({"shutdown"}).exit_code, kExitRefused);
}

TEST_F(GodwitctlCli, MemoryReadWritesTheExactBytes) {
  std::string out_file = sock_.dir() + "/dump.bin";
  auto run = ctl({"memory", "read", "--gpa", "0x100", "--len", "4096", "--out", out_file});
  EXPECT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.out, "wrote 4096 bytes of guest memory at 0x100 to " + out_file + "\n");
  EXPECT_EQ(read_file(out_file), vm_.bytes(0x100, 4096));

  auto json = ctl({"memory", "read", "--gpa=7", "--len=0x10", "--out", out_file, "--json"});
  EXPECT_EQ(json.exit_code, kExitOk) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out),
            (nlohmann::json{{"gpa", 7}, {"len", 16}, {"out", out_file}}));
  EXPECT_EQ(read_file(out_file), vm_.bytes(7, 16));
}

TEST_F(GodwitctlCli, MemoryReadOutOfBoundsIsRefused) {
  std::string out_file = sock_.dir() + "/dump.bin";
  auto run = ctl({"memory", "read", "--gpa", "0xffff", "--len", "2", "--out", out_file});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_NE(run.err.find("is outside guest memory (HTTP 400)"), std::string::npos) << run.err;
  EXPECT_FALSE(std::ifstream(out_file).good());
}

TEST_F(GodwitctlCli, MemoryReadToAnUnwritableFileFails) {
  auto run =
      ctl({"memory", "read", "--gpa", "0", "--len", "1", "--out", sock_.dir() + "/no/such/dir/f"});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_NE(run.err.find("opening " + sock_.dir() + "/no/such/dir/f"), std::string::npos);
}

TEST_F(GodwitctlCli, SocketFromTheEnvironment) {
  CliEnvironment environment;
  environment.api_sock = sock_.path();
  auto run = run_ctl({"status", "--json"}, environment);
  EXPECT_EQ(run.exit_code, kExitOk) << run.err;
  // --api-sock wins over the environment.
  environment.api_sock = "/nonexistent/env.sock";
  EXPECT_EQ(run_ctl({"--api-sock", sock_.path(), "status"}, environment).exit_code, kExitOk);
}

TEST(GodwitctlCliNoServer, MissingSocketIsExit3WithAHint) {
  TempSocketPath sock;
  auto run = run_ctl({"--api-sock", sock.path(), "status"});
  EXPECT_EQ(run.exit_code, kExitUnreachable);
  EXPECT_EQ(run.err, "godwitctl: cannot connect to " + sock.path() +
                         ": No such file or directory \u2014 is godwit running with --api-sock " +
                         sock.path() + "?\n");
}

TEST(GodwitctlCliNoServer, UsageErrorsAreExit2) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                                    // no command
      {"--api-sock", "/x"},                                  // no command
      {"--api-sock", "/x", "frobnicate"},                    // unknown command
      {"--api-sock", "/x", "memory"},                        // missing subcommand
      {"--api-sock", "/x", "memory", "write"},               // unknown subcommand
      {"--api-sock", "/x", "status", "extra"},               // stray argument
      {"--api-sock", "/x", "pause", "--gpa", "1"},           // option of another command
      {"--api-sock", "/x", "memory", "read", "--gpa", "1"},  // missing --len/--out
      {"--api-sock", "/x", "memory", "read", "--gpa", "zz", "--len", "1", "--out", "f"},
      {"--api-sock", "/x", "memory", "read", "--gpa", "0", "--len", "0", "--out", "f"},
      {"--api-sock"},  // missing value
      {"status"},      // no socket at all
  };
  for (const auto& args : bad) {
    auto run = run_ctl(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(run.exit_code, kExitUsage) << joined;
    EXPECT_TRUE(run.err.starts_with("godwitctl: ")) << joined << ": " << run.err;
    EXPECT_NE(run.err.find("--help' for usage"), std::string::npos) << run.err;
  }
  auto no_socket = run_ctl({"status"});
  EXPECT_NE(no_socket.err.find("GODWIT_API_SOCK"), std::string::npos);
}

TEST(GodwitctlCliNoServer, HelpListsEveryCommandAndItsOptions) {
  auto overall = run_ctl({"--help"});
  EXPECT_EQ(overall.exit_code, kExitOk);
  for (const auto& command : command_table()) {
    EXPECT_NE(overall.out.find("  " + command_name(command) + " "), std::string::npos)
        << command_name(command);
  }
  EXPECT_NE(overall.out.find("--api-sock PATH"), std::string::npos);
  EXPECT_NE(overall.out.find("GODWIT_API_SOCK"), std::string::npos);

  auto memory_read = run_ctl({"memory", "read", "--help"});
  EXPECT_EQ(memory_read.exit_code, kExitOk);
  EXPECT_TRUE(memory_read.out.starts_with(
      "Usage: godwitctl [--api-sock PATH] memory read --gpa ADDR --len N --out FILE"))
      << memory_read.out;
  for (const char* option : {"--gpa ADDR", "--len N", "--out FILE", "--json"}) {
    EXPECT_NE(memory_read.out.find(option), std::string::npos) << option;
  }
  auto memory = run_ctl({"memory", "--help"});
  EXPECT_EQ(memory.exit_code, kExitOk);
  EXPECT_NE(memory.out.find("memory read"), std::string::npos);
}

TEST(GodwitctlBinary, RunsAsAProcess) {
  std::string binary = test::build_path("bin/godwitctl");
  if (::access(binary.c_str(), X_OK) != 0) GTEST_SKIP() << binary << " is not built";
  TempSocketPath sock;
  FakeVm vm;
  api::Router router;
  api::register_vm_routes(router, vm);
  auto server = api::HttpServer::start(sock.path(), std::move(router));
  ASSERT_TRUE(server.has_value());

  auto run_binary = [&](std::vector<std::string> args) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setenv("GODWIT_API_SOCK", sock.path().c_str(), 1);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<char*> argv{binary.data()};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run_binary({"pause"}), kExitOk);
  EXPECT_EQ(vm.state(), "paused");
  EXPECT_EQ(run_binary({"pause"}), kExitRefused);
  EXPECT_EQ(run_binary({"bogus"}), kExitUsage);
  EXPECT_EQ(run_binary({"--api-sock", sock.dir() + "/none.sock", "status"}), kExitUnreachable);
}

}  // namespace
}  // namespace godwit::ctl
