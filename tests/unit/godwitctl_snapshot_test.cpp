// godwitctl snapshot create | info | merge, run in-process (run_godwitctl):
// info and merge work offline, with no API socket, on synthetic snapshot
// directories (tests/snapshot_fixture.h); create needs a socket and sends
// PUT /vm/snapshot to a real HttpServer whose fake VmControl records the
// body and answers with a report or a refusal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "godwitctl_test_support.h"
#include "snapshot/memory_file.h"
#include "snapshot_fixture.h"
#include "snapshot_test_support.h"
#include "tools/godwitctl/command.h"

namespace godwit::ctl {
namespace {

using test::run_ctl;  // no API socket anywhere unless the args name one
using ::testing::HasSubstr;

const test::SyntheticSnapshotOptions kVm{.memory_size = 16 * kMiB,
                                         .vcpus = 2,
                                         .tsc_khz = 2445000,
                                         .image = "/nonexistent/synthetic.img"};

/// A base snapshot and a diff on top of it.
class GodwitctlSnapshotOffline : public ::testing::Test {
 protected:
  void SetUp() override {
    auto vm = test::SyntheticVm::create(kVm);
    ASSERT_TRUE(vm) << vm.error().message;
    vm_.emplace(std::move(*vm));
    auto full = vm_->snapshot_full(base());
    ASSERT_TRUE(full) << full.error().message;
    base_manifest_ = *full;
    auto top = vm_->snapshot_diff(diff());
    ASSERT_TRUE(top) << top.error().message;
    diff_manifest_ = *top;
  }
  std::string base() const { return dir_.file("base"); }
  std::string diff() const { return dir_.file("diff"); }

  test::ScratchDir dir_{"ctl"};
  std::optional<test::SyntheticVm> vm_;
  snapshot::Manifest base_manifest_, diff_manifest_;
};

TEST_F(GodwitctlSnapshotOffline, InfoDescribesTheSnapshotAndItsChain) {
  auto run = run_ctl({"snapshot", "info", "--dir", diff()});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_THAT(run.out, HasSubstr("snapshot " + diff() +
                                 ": diff, taken 2024-01-01T00:00:00Z by "
                                 "godwit 0.1.0"));
  EXPECT_THAT(run.out, HasSubstr("vm: 2 vCPUs, 16.0 MiB RAM, guest TSC 2445000 kHz"));
  EXPECT_THAT(run.out, HasSubstr("memory: " + std::to_string(diff_manifest_.memory_data_pages) +
                                 " data pages"));
  EXPECT_THAT(run.out, HasSubstr("id " + diff_manifest_.memory_id.hex()));
  EXPECT_THAT(run.out, HasSubstr("parent: " + base()));
  EXPECT_THAT(run.out, HasSubstr("chain (base first):\n    " + base() + "/memory.gmf\n    " +
                                 diff() + "/memory.gmf\n"));
  EXPECT_THAT(run.out, ::testing::Not(HasSubstr("verified")));

  auto base_run = run_ctl({"snapshot", "info", "--dir", base()});
  ASSERT_EQ(base_run.exit_code, kExitOk) << base_run.err;
  EXPECT_THAT(base_run.out, HasSubstr(": full, taken"));
  EXPECT_THAT(base_run.out, ::testing::Not(HasSubstr("parent:")));
}

TEST_F(GodwitctlSnapshotOffline, InfoVerifyAndJson) {
  auto verified = run_ctl({"snapshot", "info", "--dir", diff(), "--verify"});
  ASSERT_EQ(verified.exit_code, kExitOk) << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("every memory checksum verified"));

  auto json_run = run_ctl({"--json", "snapshot", "info", "--dir", diff(), "--verify"});
  ASSERT_EQ(json_run.exit_code, kExitOk) << json_run.err;
  auto j = nlohmann::json::parse(json_run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json_run.out;
  EXPECT_EQ(j["kind"], "diff");
  EXPECT_EQ(j["memory"]["id"], diff_manifest_.memory_id.hex());
  EXPECT_EQ(j["chain"], nlohmann::json({base() + "/memory.gmf", diff() + "/memory.gmf"}));
  EXPECT_EQ(j["verified"], true);
  EXPECT_EQ(j["vm"]["vcpus"], 2);
}

TEST_F(GodwitctlSnapshotOffline, InfoVerifyFindsDamagedPageData) {
  auto file = snapshot::MemoryFile::open(base() + "/memory.gmf");
  ASSERT_TRUE(file) << file.error().message;
  test::flip_bit(base() + "/memory.gmf", file->header().data_offset + 10, 1);
  // Without --verify only metadata is read: the damage is not seen.
  EXPECT_EQ(run_ctl({"snapshot", "info", "--dir", diff()}).exit_code, kExitOk);
  auto run = run_ctl({"snapshot", "info", "--dir", diff(), "--verify"});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_THAT(run.err, HasSubstr(base() + "/memory.gmf"));
  EXPECT_THAT(run.err, HasSubstr("checksum mismatch"));
  EXPECT_EQ(run.out, "");
}

TEST_F(GodwitctlSnapshotOffline, InfoOnBrokenDirectoriesIsRefused) {
  auto missing = run_ctl({"snapshot", "info", "--dir", dir_.file("nowhere")});
  EXPECT_EQ(missing.exit_code, kExitRefused);
  EXPECT_EQ(missing.err, "godwitctl: snapshot directory " + dir_.file("nowhere") +
                             ": No such file or directory\n");

  std::filesystem::remove_all(base());
  auto orphan = run_ctl({"snapshot", "info", "--dir", diff()});
  EXPECT_EQ(orphan.exit_code, kExitRefused);
  EXPECT_THAT(orphan.err, HasSubstr("is a diff on top of " + base()));
}

TEST_F(GodwitctlSnapshotOffline, MergeMakesTheDiffFull) {
  const auto base_memory = test::fingerprint(base() + "/memory.gmf");
  auto run = run_ctl({"snapshot", "merge", "--dir", diff()});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_THAT(run.out, HasSubstr("snapshot " + diff() + " is now full: "));
  EXPECT_THAT(run.out, HasSubstr(" data pages, memory file "));
  EXPECT_EQ(test::fingerprint(base() + "/memory.gmf"), base_memory);

  auto m = snapshot::read_manifest(diff());
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->kind, snapshot::MemoryFileKind::full);
  EXPECT_EQ(m->memory_id, diff_manifest_.memory_id);
  auto info = run_ctl({"snapshot", "info", "--dir", diff(), "--verify"});
  ASSERT_EQ(info.exit_code, kExitOk) << info.err;
  EXPECT_THAT(info.out, HasSubstr("chain (base first):\n    " + diff() + "/memory.gmf\n"));

  auto again = run_ctl({"snapshot", "merge", "--dir", diff()});
  EXPECT_EQ(again.exit_code, kExitRefused);
  EXPECT_THAT(again.err, HasSubstr("is already full: nothing to merge"));
}

TEST_F(GodwitctlSnapshotOffline, MergeJson) {
  auto run = run_ctl({"snapshot", "merge", "--dir", diff(), "--json"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  auto j = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << run.out;
  EXPECT_EQ(j["dir"], diff());
  EXPECT_EQ(j["file_bytes"], test::file_size(diff() + "/memory.gmf"));
  auto m = snapshot::read_manifest(diff());
  ASSERT_TRUE(m);
  EXPECT_EQ(j["data_pages"], m->memory_data_pages);
}

TEST(GodwitctlSnapshotUsage, CreateNeedsASocketAndADir) {
  auto no_socket = run_ctl({"snapshot", "create", "--dir", "/tmp/snap"});
  EXPECT_EQ(no_socket.exit_code, kExitUsage);
  EXPECT_THAT(no_socket.err, HasSubstr("no API socket"));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--api-sock", "/x", "snapshot", "create"},
           {"snapshot", "info"},
           {"snapshot", "merge"},
           {"snapshot", "info", "--dir", "/x", "extra"},
           {"snapshot", "merge", "--dir", "/x", "--diff"},
           {"snapshot"},
           {"snapshot", "restore", "--dir", "/x"},
       }) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    auto run = run_ctl(args);
    EXPECT_EQ(run.exit_code, kExitUsage) << joined << ": " << run.err;
    EXPECT_THAT(run.err, HasSubstr("--help' for usage")) << joined;
  }
  auto help = run_ctl({"snapshot", "--help"});
  EXPECT_EQ(help.exit_code, kExitOk);
  for (const char* sub : {"snapshot create", "snapshot info", "snapshot merge"})
    EXPECT_THAT(help.out, HasSubstr(sub));
}

/// A fake VMM whose PUT /vm/snapshot records the body.
class SnapshotFakeVm : public test::FakeVm {
 public:
  Result<nlohmann::json> snapshot(const nlohmann::json& request) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    if (refuse_) return api::vm_conflict("the VM must be paused for a snapshot (it is running)");
    return nlohmann::json{{"dir", request.value("dir", "")},
                          {"type", request.value("type", "full")},
                          {"parent", nullptr},
                          {"data_pages", 300},
                          {"zero_pages", 16084},
                          {"memory_bytes", 3 * 1024 * 1024},
                          {"state_bytes", 5120},
                          {"bytes_written", 3 * 1024 * 1024 + 5120},
                          {"duration_ms", 42.7}};
  }
  void refuse() {
    std::lock_guard lock(mutex_);
    refuse_ = true;
  }
  std::vector<nlohmann::json> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  std::mutex mutex_;
  std::vector<nlohmann::json> requests_;
  bool refuse_ = false;
};

class GodwitctlSnapshotCreate : public ::testing::Test {
 protected:
  void SetUp() override {
    api::Router router;
    api::register_vm_routes(router, vm_);
    auto started = server_.start(std::move(router));
    ASSERT_TRUE(started) << started.error().message;
  }
  test::CtlRun ctl(std::vector<std::string> args) { return server_.ctl(std::move(args)); }

  SnapshotFakeVm vm_;
  test::CtlServer server_;
};

TEST_F(GodwitctlSnapshotCreate, SendsAnAbsoluteDirAndPrintsTheReport) {
  auto run = ctl({"snapshot", "create", "--dir", "/var/snap/1"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  ASSERT_EQ(vm_.requests().size(), 1u);
  EXPECT_EQ(vm_.requests()[0], (nlohmann::json{{"dir", "/var/snap/1"}, {"type", "full"}}));
  EXPECT_EQ(run.out,
            "snapshot written to /var/snap/1: full, 300 data pages, memory file 3.0 MiB, state "
            "5120 bytes, 42 ms\n");

  auto diff = ctl({"snapshot", "create", "--diff", "--dir", "relative/snap"});
  ASSERT_EQ(diff.exit_code, kExitOk) << diff.err;
  ASSERT_EQ(vm_.requests().size(), 2u);
  const std::string absolute = (std::filesystem::current_path() / "relative/snap").string();
  EXPECT_EQ(vm_.requests()[1], (nlohmann::json{{"dir", absolute}, {"type", "diff"}}));
  EXPECT_THAT(diff.out, HasSubstr("snapshot written to " + absolute + ": diff, "));
  EXPECT_FALSE(std::filesystem::exists("relative")) << "godwitctl creates nothing itself";
}

TEST_F(GodwitctlSnapshotCreate, JsonPrintsTheReply) {
  auto run = ctl({"snapshot", "create", "--dir", "/var/snap/1", "--json"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  auto j = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << run.out;
  EXPECT_EQ(j["dir"], "/var/snap/1");
  EXPECT_EQ(j["data_pages"], 300);
  EXPECT_EQ(j["duration_ms"], 42.7);
}

TEST_F(GodwitctlSnapshotCreate, ARefusalIsExit1WithTheVmmsMessage) {
  vm_.refuse();
  auto run = ctl({"snapshot", "create", "--dir", "/var/snap/1"});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_THAT(run.err, HasSubstr("the VM must be paused for a snapshot"));
  EXPECT_THAT(run.err, HasSubstr("HTTP 409"));
  EXPECT_EQ(run.out, "");
}

TEST(GodwitctlSnapshotCreateNoServer, AnUnreachableSocketIsExit3) {
  test::TempSocketPath sock;
  auto run = run_ctl({"--api-sock", sock.path(), "snapshot", "create", "--dir", "/var/snap/1"});
  EXPECT_EQ(run.exit_code, kExitUnreachable);
  EXPECT_THAT(run.err, HasSubstr("cannot connect to " + sock.path()));
}

TEST(GodwitctlSnapshotOfflineWithSocket, InfoNeverTouchesTheSocket) {
  // A socket that does not exist: offline commands must not try it.
  test::ScratchDir dir("ctl-sock");
  ASSERT_TRUE(test::make_synthetic_snapshot(dir.file("s"), kVm));
  auto run =
      run_ctl({"--api-sock", dir.file("no.sock"), "snapshot", "info", "--dir", dir.file("s")});
  EXPECT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_THAT(run.out, HasSubstr(": full, taken"));
}

}  // namespace
}  // namespace godwit::ctl
