// Snapshots and `godwit --restore` end to end, against real godwit processes
// (issue acceptance for snapshot/restore):
//
//  1. selfcheck with a disk, a tap in a test-owned network namespace and an
//     rng, snapshotted early / after round 10 / after round 30, the source
//     killed, restored eagerly or lazily: the restored VM prints PASS, exits 0
//     and the disk holds the guest's pattern;
//  2. the ring-3 a-b guest restored --paused: its RAM equals the source's at
//     the snapshot, satisfies the a-b checker, and the guest keeps making
//     passes after a resume;
//  3. a full + two diffs restores the same RAM as a full snapshot taken in
//     the same pause (and as the source's), also after `snapshot merge` with
//     the parents deleted; the merged snapshot then runs selfcheck to PASS;
//  4. a snapshot from a host with another TSC rate is scaled or refused; a
//     manifest whose vCPU count disagrees with the state is refused; files
//     are never modified;
//  5. a bit flip in memory.gmf page data stops a lazy restore with status 1
//     and fails an eager one, naming the checksum; files unchanged;
//  6. PUT /vm/snapshot refusals on a live VM (running, diff first, non-empty
//     directory) with 409 / godwitctl status 1.
//
// Written on a machine without /dev/kvm: these tests are labelled
// `unverified` (make test-unverified) until they have been run on a KVM host.
// Every test skips with a message when /dev/kvm is missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "snapshot/manifest.h"
#include "snapshot/memory_file.h"
#include "tools/abcheck/abcheck.h"
#include "unverified/snapshot_util.h"

namespace godwit::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTap = "gwsnap0";
constexpr uint64_t kAbBase = 0x100000;
constexpr uint64_t kAbPages = 2048;

std::string selfcheck_image() { return build_path("guests/selfcheck.img"); }
std::string ab_image() { return build_path("guests/ab-ring3.img"); }

/// The a-b guest used by tests 2, 4, 5 and 6: ring 3 (native speed), never
/// exits on its own, so an exit status is always godwit's doing.
std::vector<std::string> ab_args() {
  return {"--image", ab_image(),      "--memory",
          "64M",     "--guest-param", "ab.pages=" + std::to_string(kAbPages)};
}

/// Checks the a-b range of a full-RAM dump (region 0 starts at gpa 0).
abcheck::AbCheckResult check_ab_range(const MemoryDump& dump) {
  abcheck::AbCheckResult bad;
  if (!dump.error.empty() || dump.regions.empty() || dump.regions[0].first != 0 ||
      dump.regions[0].second.size() < kAbBase + kAbPages * 4096) {
    bad.message = "no usable dump: " + dump.error;
    return bad;
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(dump.regions[0].second.data());
  return abcheck::check_ab(std::span(bytes + kAbBase, kAbPages * 4096));
}

/// Starts the a-b guest and waits until it has made a few passes.
void start_ab(Godwit& vm) {
  ASSERT_TRUE(vm.wait_api(kApiTimeout)) << vm.stderr_text();
  ASSERT_TRUE(vm.wait_serial("B", kGuestTimeout, 11)) << "fewer than 10 passes: " << vm.serial();
}

// ---- 1. selfcheck with devices, restored at several points -------------

struct SnapshotPoint {
  const char* name;
  /// Console text to wait for before pausing; empty: pause ~0.3 s after the
  /// API answers (usually still in ring 0, around the virtio device step).
  const char* marker;
};

void PrintTo(const SnapshotPoint& p, std::ostream* os) { *os << p.name; }

class SelfcheckRestore : public ::testing::TestWithParam<std::tuple<RestoreMode, SnapshotPoint>> {};

TEST_P(SelfcheckRestore, RestoredGuestPassesWithItsDevices) {
  GODWIT_REQUIRE_KVM();
  const auto [mode, point] = GetParam();
  TapNamespace ns;
  if (std::string why = ns.setup(kTap); !why.empty()) GTEST_SKIP() << why << ": test skipped";
  TempDir work;
  const std::string disk = make_disk(work, "disk.img");
  const std::string snap = work.file("snap");

  std::string console_before;
  {
    Godwit source({"--image", selfcheck_image(), "--vcpus", "2", "--memory", "256M",
                   "--guest-param", "selfchk.rounds=60", "--disk",
                   "path=" + disk + ",serial=gw-snap-disk", "--net",
                   std::string("tap=") + kTap + ",mac=52:54:00:12:34:56", "--rng"});
    ASSERT_TRUE(source.wait_api(kApiTimeout)) << source.stderr_text();
    if (std::string(point.marker).empty()) {
      ASSERT_TRUE(wait_for_state(source, "running", kApiTimeout)) << source.stderr_text();
      std::this_thread::sleep_for(300ms);
    } else {
      ASSERT_TRUE(source.wait_serial(point.marker, kGuestTimeout))
          << source.serial() << source.stderr_text();
    }
    ASSERT_EQ(vm_action(source, "pause"), "") << source.serial() << source.stderr_text();
    console_before = source.serial();
    ASSERT_EQ(console_before.find("PASS"), std::string::npos) << "finished too early";
    CtlResult made = create_snapshot(source, snap);
    ASSERT_EQ(made.status, 0) << made.output << source.stderr_text();
    EXPECT_NE(made.output.find("snapshot written to " + snap + ": full"), std::string::npos)
        << made.output;
    ASSERT_TRUE(kill_source(source));
  }

  Godwit restored(restore_args(snap, mode, false));
  auto status = restored.wait_exit(kGuestTimeout);
  const std::string console_after = restored.serial();
  ASSERT_TRUE(status) << "the restored selfcheck did not finish: " << console_after
                      << restored.stderr_text();
  EXPECT_EQ(*status, 0) << console_after << restored.stderr_text();
  EXPECT_NE(console_after.find("PASS"), std::string::npos) << console_after;
  EXPECT_EQ(console_after.find("FAIL"), std::string::npos) << console_after;
  EXPECT_NE(restored.stderr_text().find(std::string("restore: running after")), std::string::npos)
      << restored.stderr_text();
  EXPECT_NE(restored.stderr_text().find(std::string("(memory ") + mode_name(mode) + ")"),
            std::string::npos)
      << restored.stderr_text();

  // The console continues where the source's stopped: together they hold
  // the device results (printed once, before or after the snapshot) and the
  // guest's own verdict for both vCPUs.
  const std::string console = console_before + console_after;
  EXPECT_NE(console.find("virtio-blk ok id=gw-snap-disk"), std::string::npos) << console;
  EXPECT_NE(console.find("virtio-net ok peer="), std::string::npos) << console;
  EXPECT_NE(console.find("virtio-rng ok"), std::string::npos) << console;
  for (int cpu = 0; cpu < 2; ++cpu)
    EXPECT_TRUE(std::regex_search(
        console_after, std::regex("cpu" + std::to_string(cpu) + " ticks=[0-9]+ rounds=60")))
        << "no summary for cpu" << cpu << ": " << console_after;
  EXPECT_EQ(check_disk(disk), "");
}

std::string selfcheck_restore_name(
    const ::testing::TestParamInfo<std::tuple<RestoreMode, SnapshotPoint>>& info) {
  return std::string(mode_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(
    ModesAndPoints, SelfcheckRestore,
    ::testing::Combine(::testing::Values(RestoreMode::eager, RestoreMode::lazy),
                       ::testing::Values(SnapshotPoint{"early", ""},
                                         SnapshotPoint{"round10", "round 10 ok"},
                                         SnapshotPoint{"round30", "round 30 ok"})),
    selfcheck_restore_name);

// ---- 2. the a-b guest restored paused --------------------------------

class AbRestore : public ::testing::TestWithParam<RestoreMode> {};

TEST_P(AbRestore, PausedRestoreHoldsTheSnapshotMemoryAndResumes) {
  GODWIT_REQUIRE_KVM();
  const RestoreMode mode = GetParam();
  TempDir work;
  const std::string snap = work.file("snap");

  MemoryDump at_snapshot;
  {
    Godwit source(ab_args());
    start_ab(source);
    if (HasFatalFailure()) return;
    ASSERT_EQ(vm_action(source, "pause"), "");
    at_snapshot = dump_memory(source);
    ASSERT_EQ(at_snapshot.error, "");
    auto source_check = check_ab_range(at_snapshot);
    ASSERT_TRUE(source_check.ok) << "the source's own dump: " << source_check.message;
    CtlResult made = create_snapshot(source, snap);
    ASSERT_EQ(made.status, 0) << made.output << source.stderr_text();
    ASSERT_TRUE(kill_source(source));
  }

  Godwit restored(restore_args(snap, mode, true));
  ASSERT_TRUE(wait_restored(restored, /*paused=*/true, kApiTimeout)) << restored.stderr_text();
  EXPECT_EQ(vm_state(restored), "paused");
  MemoryDump dump = dump_memory(restored);
  ASSERT_EQ(dump.error, "");
  EXPECT_EQ(compare_dumps(at_snapshot, dump), "") << "restored RAM differs from the source's";
  auto r = check_ab_range(dump);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.pages, kAbPages);
  // --paused parks every vCPU before its first KVM_RUN: nothing printed yet.
  EXPECT_EQ(restored.serial(), "");

  ASSERT_EQ(vm_action(restored, "resume"), "");
  EXPECT_TRUE(restored.wait_serial("B", kGuestTimeout, 10))
      << "the restored guest makes no passes: " << restored.serial() << restored.stderr_text();
  ASSERT_EQ(vm_action(restored, "pause"), "");
  auto again = check_ab_range(dump_memory(restored));
  EXPECT_TRUE(again.ok) << "after resuming: " << again.message;
  EXPECT_EQ(vm_action(restored, "shutdown"), "");
  EXPECT_EQ(restored.wait_exit(kApiTimeout), 0) << restored.stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Modes, AbRestore, ::testing::Values(RestoreMode::eager, RestoreMode::lazy),
                         [](const auto& info) { return std::string(mode_name(info.param)); });

// ---- 3. diff chain == full == merged ------------------------------------

/// Restores `dir` paused, dumps all RAM and shuts it down; the dump's error
/// says what went wrong.
MemoryDump restore_and_dump(const std::string& dir, RestoreMode mode) {
  Godwit restored(restore_args(dir, mode, true));
  MemoryDump dump;
  if (!wait_restored(restored, /*paused=*/true, kApiTimeout)) {
    dump.error = "restore of " + dir + " did not come up: " + restored.stderr_text();
    return dump;
  }
  if (std::string state = vm_state(restored); state != "paused") {
    dump.error = "restore of " + dir + " is " + state + ", not paused";
    return dump;
  }
  dump = dump_memory(restored);
  if (std::string e = vm_action(restored, "shutdown"); !e.empty()) dump.error += e;
  if (restored.wait_exit(kApiTimeout) != 0)
    dump.error += "restore of " + dir + " did not shut down cleanly: " + restored.stderr_text();
  return dump;
}

TEST(SnapshotChain, DiffChainFullSnapshotAndMergeRestoreTheSameMemory) {
  GODWIT_REQUIRE_KVM();
  TempDir work;
  const std::string a = work.file("A"), b = work.file("B"), c = work.file("C"), f = work.file("F");
  MemoryDump source_dump;
  {
    // 200 rounds (each at least 5 timer ticks of running time): the guest
    // is still far from done at the third pause.
    Godwit source({"--image", selfcheck_image(), "--vcpus", "2", "--memory", "128M",
                   "--guest-param", "selfchk.rounds=200"});
    ASSERT_TRUE(source.wait_api(kApiTimeout)) << source.stderr_text();
    // Ring 3 rewrites the workload areas every round: diffs have work to do.
    ASSERT_TRUE(source.wait_serial("round 1 ok", kGuestTimeout)) << source.serial();

    ASSERT_EQ(vm_action(source, "pause"), "");
    CtlResult made = create_snapshot(source, a);
    ASSERT_EQ(made.status, 0) << made.output;
    EXPECT_NE(made.output.find(": full,"), std::string::npos) << made.output;
    ASSERT_EQ(vm_action(source, "resume"), "");
    std::this_thread::sleep_for(500ms);

    ASSERT_EQ(vm_action(source, "pause"), "") << source.serial();
    made = create_snapshot(source, b, /*diff=*/true);
    ASSERT_EQ(made.status, 0) << made.output;
    EXPECT_NE(made.output.find(": diff,"), std::string::npos) << made.output;
    ASSERT_EQ(vm_action(source, "resume"), "");
    std::this_thread::sleep_for(500ms);

    ASSERT_EQ(vm_action(source, "pause"), "") << source.serial();
    made = create_snapshot(source, c, /*diff=*/true);
    ASSERT_EQ(made.status, 0) << made.output;
    made = create_snapshot(source, f);
    ASSERT_EQ(made.status, 0) << made.output;
    source_dump = dump_memory(source);
    ASSERT_EQ(source_dump.error, "");
    EXPECT_EQ(source.serial().find("FAIL"), std::string::npos) << source.serial();
    ASSERT_TRUE(kill_source(source));
  }

  // The manifests link C -> B -> A; F stands alone.
  auto mb = snapshot::read_manifest(b), mc = snapshot::read_manifest(c),
       mf = snapshot::read_manifest(f);
  ASSERT_TRUE(mb && mc && mf);
  ASSERT_TRUE(mb->parent && mc->parent);
  EXPECT_EQ(mb->parent->dir, a);
  EXPECT_EQ(mc->parent->dir, b);
  EXPECT_FALSE(mf->parent.has_value());
  EXPECT_EQ(mf->kind, snapshot::MemoryFileKind::full);
  auto chain = snapshot::memory_chain(c);
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(chain->size(), 3u);

  MemoryDump from_f = restore_and_dump(f, RestoreMode::eager);
  ASSERT_EQ(from_f.error, "");
  EXPECT_EQ(compare_dumps(source_dump, from_f), "") << "full snapshot F vs the source";
  from_f = {};  // one restored dump in memory at a time

  MemoryDump from_c = restore_and_dump(c, RestoreMode::lazy);
  ASSERT_EQ(from_c.error, "");
  EXPECT_EQ(compare_dumps(source_dump, from_c), "") << "diff chain A+B+C vs the source (and F)";
  from_c = {};

  // Merged, C needs no parent any more: delete them.
  CtlResult merged = run_ctl("", {"snapshot", "merge", "--dir", c}, work);
  ASSERT_EQ(merged.status, 0) << merged.output;
  EXPECT_NE(merged.output.find("is now full"), std::string::npos) << merged.output;
  fs::remove_all(a);
  fs::remove_all(b);
  auto mc2 = snapshot::read_manifest(c);
  ASSERT_TRUE(mc2) << mc2.error().message;
  EXPECT_EQ(mc2->kind, snapshot::MemoryFileKind::full);
  EXPECT_FALSE(mc2->parent.has_value());
  MemoryDump from_merged = restore_and_dump(c, RestoreMode::eager);
  ASSERT_EQ(from_merged.error, "");
  EXPECT_EQ(compare_dumps(source_dump, from_merged), "") << "merged C vs the source";
  from_merged = {};

  // And the merged snapshot is a working VM: selfcheck runs to its verdict.
  Godwit resumed(restore_args(c, RestoreMode::eager, false));
  auto status = resumed.wait_exit(kGuestTimeout);
  ASSERT_TRUE(status) << "selfcheck from merged C did not finish: " << resumed.serial();
  EXPECT_EQ(*status, 0) << resumed.serial() << resumed.stderr_text();
  EXPECT_NE(resumed.serial().find("PASS"), std::string::npos) << resumed.serial();
}

// ---- 4. host checks --------------------------------------------------

/// Takes full snapshots of one paused a-b guest (`extra` arguments added)
/// into each of `dirs`.
void snapshot_ab_guest(const std::vector<std::string>& dirs,
                       const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = ab_args();
  args.insert(args.end(), extra.begin(), extra.end());
  Godwit source(args);
  start_ab(source);
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_EQ(vm_action(source, "pause"), "");
  for (const std::string& dir : dirs) {
    CtlResult made = create_snapshot(source, dir);
    ASSERT_EQ(made.status, 0) << made.output << source.stderr_text();
  }
  ASSERT_TRUE(kill_source(source));
}

TEST(SnapshotHostChecks, ForeignTscRateIsScaledOrRefusedWithoutTouchingFiles) {
  GODWIT_REQUIRE_KVM();
  TempDir work;
  const std::string snap = work.file("snap");
  snapshot_ab_guest({snap});
  if (HasFatalFailure()) return;

  auto manifest = snapshot::read_manifest(snap);
  ASSERT_TRUE(manifest) << manifest.error().message;
  const uint32_t host_khz = manifest->tsc_khz;
  ASSERT_GT(host_khz, 2u);
  // Half the host's rate: without TSC scaling (KVM_CAP_TSC_CONTROL) KVM
  // refuses a rate below the hardware's (a rate above it would be accepted
  // in "catch-up" mode), with scaling it is set. Both outcomes are correct.
  const uint32_t foreign_khz = host_khz / 2;
  manifest->tsc_khz = foreign_khz;
  ASSERT_TRUE(snapshot::write_manifest(snap, *manifest));
  const DirFingerprint before = fingerprint(snap);

  Godwit restored(restore_args(snap, RestoreMode::eager, true));
  if (restored.wait_api(kApiTimeout)) {
    RecordProperty("tsc_outcome", "scaled");
    std::cout << "[ info ] this host scaled the guest TSC to " << foreign_khz << " kHz\n";
    EXPECT_NE(restored.stderr_text().find("guest TSC scaled"), std::string::npos)
        << restored.stderr_text();
    EXPECT_NE(restored.stderr_text().find(std::to_string(foreign_khz) + " kHz"), std::string::npos)
        << restored.stderr_text();
    ASSERT_TRUE(wait_restored(restored, /*paused=*/true, kApiTimeout)) << restored.stderr_text();
    ASSERT_EQ(vm_action(restored, "resume"), "");
    EXPECT_TRUE(restored.wait_serial("B", kGuestTimeout, 3)) << restored.serial();
    EXPECT_EQ(vm_action(restored, "shutdown"), "");
    EXPECT_EQ(restored.wait_exit(kApiTimeout), 0) << restored.stderr_text();
  } else {
    RecordProperty("tsc_outcome", "refused");
    std::cout << "[ info ] this host cannot scale the guest TSC: restore refused\n";
    auto status = restored.wait_exit(60s);
    ASSERT_TRUE(status) << "neither up nor exited: " << restored.stderr_text();
    EXPECT_EQ(*status, 1) << restored.stderr_text();
    const std::string err = restored.stderr_text();
    EXPECT_NE(err.find("restore from " + snap + " failed"), std::string::npos) << err;
    EXPECT_NE(err.find("TSC"), std::string::npos) << err;
    EXPECT_NE(err.find(std::to_string(foreign_khz) + " kHz"), std::string::npos) << err;
  }
  EXPECT_EQ(fingerprint(snap), before) << "the restore modified the snapshot";
}

TEST(SnapshotHostChecks, VcpuCountDisagreeingWithTheStateIsRefused) {
  GODWIT_REQUIRE_KVM();
  TempDir work;
  const std::string snap = work.file("snap");
  // Two vCPUs (ab-ring3 leaves the AP waiting for its SIPI): the state
  // holds two, the edited manifest claims 1000.
  snapshot_ab_guest({snap}, {"--vcpus", "2"});
  if (HasFatalFailure()) return;

  auto manifest = snapshot::read_manifest(snap);
  ASSERT_TRUE(manifest) << manifest.error().message;
  ASSERT_EQ(manifest->vm.value("vcpus", 0u), 2u);
  manifest->vm["vcpus"] = 1000;
  ASSERT_TRUE(snapshot::write_manifest(snap, *manifest));
  const DirFingerprint before = fingerprint(snap);

  Godwit restored(restore_args(snap, RestoreMode::eager, false));
  auto status = restored.wait_exit(kApiTimeout);
  ASSERT_TRUE(status) << restored.stderr_text();
  EXPECT_EQ(*status, 1) << restored.stderr_text();
  const std::string err = restored.stderr_text();
  EXPECT_NE(err.find("restore from " + snap + " failed"), std::string::npos) << err;
  EXPECT_NE(err.find("vCPUs"), std::string::npos) << err;
  EXPECT_NE(err.find("1000"), std::string::npos) << err;
  EXPECT_EQ(fingerprint(snap), before) << "the restore modified the snapshot";
}

// ---- 5. damaged page data -------------------------------------------------

TEST(SnapshotDamage, BitFlipInPageDataStopsLazyAndEagerRestores) {
  GODWIT_REQUIRE_KVM();
  TempDir work;
  const std::string snap = work.file("snap");
  snapshot_ab_guest({snap});
  if (HasFatalFailure()) return;
  const std::string memory = snapshot::snapshot_path(snap, snapshot::kMemoryFile);

  // A data page (not header, not index) the guest uses: the chunk of the
  // a-b range's first page, which also holds the guest's code.
  uint64_t offset = 0;
  {
    auto file = snapshot::MemoryFile::open(memory);
    ASSERT_TRUE(file) << file.error().message;
    auto chunk = file->layout().chunk_of(kAbBase);
    ASSERT_TRUE(chunk.has_value());
    const auto& entry = file->chunk(*chunk);
    ASSERT_GT(entry.data_pages, 0u);
    std::optional<uint32_t> page;
    const uint32_t ab_page = static_cast<uint32_t>((kAbBase % snapshot::kChunkBytes) / 4096);
    if (snapshot::bit_test(entry.present, ab_page)) page = ab_page;
    for (uint32_t p = 0; !page && p < file->layout()[*chunk].pages; ++p)
      if (snapshot::bit_test(entry.present, p)) page = p;
    ASSERT_TRUE(page.has_value());
    offset = file->page_offset(*chunk, *page) + 123;
    ASSERT_GE(offset, file->header().data_offset);
    ASSERT_LT(offset, file->header().index_offset);
  }
  {
    std::fstream io(memory, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(io.good());
    io.seekg(static_cast<std::streamoff>(offset));
    char byte = 0;
    io.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x10);
    io.seekp(static_cast<std::streamoff>(offset));
    io.write(&byte, 1);
    ASSERT_TRUE(io.good());
  }
  const DirFingerprint before = fingerprint(snap);

  {
    // The a-b guest never exits by itself: status 1 can only be the loader's.
    Godwit lazy(restore_args(snap, RestoreMode::lazy, false));
    auto status = lazy.wait_exit(kGuestTimeout);
    ASSERT_TRUE(status) << "a lazy restore over damaged memory must stop the VM; still running "
                           "(a vCPU waiting on the failed chunk?): "
                        << lazy.stderr_text();
    EXPECT_EQ(*status, 1) << lazy.stderr_text();
    EXPECT_NE(lazy.stderr_text().find("checksum"), std::string::npos) << lazy.stderr_text();
    EXPECT_NE(lazy.stderr_text().find(memory), std::string::npos) << lazy.stderr_text();
  }
  EXPECT_EQ(fingerprint(snap), before) << "the lazy restore modified the snapshot";

  {
    Godwit eager(restore_args(snap, RestoreMode::eager, false));
    auto status = eager.wait_exit(kGuestTimeout);
    ASSERT_TRUE(status) << eager.stderr_text();
    EXPECT_EQ(*status, 1) << eager.stderr_text();
    const std::string err = eager.stderr_text();
    EXPECT_NE(err.find("restore from " + snap + " failed"), std::string::npos) << err;
    EXPECT_NE(err.find("checksum"), std::string::npos) << err;
    EXPECT_EQ(eager.serial(), "") << "the guest must not have run";
  }
  EXPECT_EQ(fingerprint(snap), before) << "the eager restore modified the snapshot";

  // The offline check agrees.
  CtlResult verified = run_ctl("", {"snapshot", "info", "--dir", snap, "--verify"}, work);
  EXPECT_EQ(verified.status, 1) << verified.output;
  EXPECT_NE(verified.output.find("checksum"), std::string::npos) << verified.output;
}

// ---- 6. API refusals on a live VM ---------------------------------------

/// PUT /vm/snapshot with `body`; {status, body} ({0, error} when unreachable).
std::pair<int, std::string> put_snapshot(const Godwit& vm, const nlohmann::json& body) {
  auto r = slow_api(vm).request("PUT", "/vm/snapshot", body.dump());
  if (!r) return {0, r.error().message};
  return {r->status, r->body};
}

TEST(SnapshotApi, RefusalsOnALiveVmLeaveItWorking) {
  GODWIT_REQUIRE_KVM();
  TempDir work;
  Godwit vm(ab_args());
  start_ab(vm);
  if (HasFatalFailure()) return;

  // Running: 409, nothing created.
  const std::string d1 = work.file("running");
  auto [st1, body1] = put_snapshot(vm, {{"dir", d1}, {"type", "full"}});
  EXPECT_EQ(st1, 409) << body1;
  EXPECT_NE(body1.find("paused"), std::string::npos) << body1;
  CtlResult ctl1 = create_snapshot(vm, d1);
  EXPECT_EQ(ctl1.status, 1) << ctl1.output;
  EXPECT_NE(ctl1.output.find("409"), std::string::npos) << ctl1.output;
  EXPECT_FALSE(fs::exists(d1));

  ASSERT_EQ(vm_action(vm, "pause"), "");

  // A diff before any full snapshot of this process: 409, nothing created.
  const std::string d2 = work.file("diff-first");
  auto [st2, body2] = put_snapshot(vm, {{"dir", d2}, {"type", "diff"}});
  EXPECT_EQ(st2, 409) << body2;
  EXPECT_NE(body2.find("full snapshot first"), std::string::npos) << body2;
  CtlResult ctl2 = create_snapshot(vm, d2, /*diff=*/true);
  EXPECT_EQ(ctl2.status, 1) << ctl2.output;
  EXPECT_FALSE(fs::exists(d2));

  // A directory that is not empty: 409, its content untouched.
  const std::string d3 = work.file("not-empty");
  fs::create_directory(d3);
  std::ofstream(d3 + "/keep") << "keep me";
  auto [st3, body3] = put_snapshot(vm, {{"dir", d3}, {"type", "full"}});
  EXPECT_EQ(st3, 409) << body3;
  EXPECT_NE(body3.find("not empty"), std::string::npos) << body3;
  CtlResult ctl3 = create_snapshot(vm, d3);
  EXPECT_EQ(ctl3.status, 1) << ctl3.output;
  EXPECT_EQ(read_file(d3 + "/keep"), "keep me");
  EXPECT_EQ(std::distance(fs::directory_iterator(d3), fs::directory_iterator()), 1);

  // Bad bodies: 400.
  EXPECT_EQ(put_snapshot(vm, {{"dir", "relative/snap"}}).first, 400);
  EXPECT_EQ(put_snapshot(vm, {{"dir", work.file("x")}, {"type", "incremental"}}).first, 400);
  EXPECT_EQ(put_snapshot(vm, {{"dir", work.file("y")}, {"extra", 1}}).first, 400);
  // A "type" that is not a string is a bad type too (400), not a crash (500).
  auto [st_type, body_type] = put_snapshot(vm, {{"dir", work.file("z")}, {"type", 5}});
  EXPECT_EQ(st_type, 400) << body_type;

  // None of that wedged the snapshotter or the VM: full, then diff, then run.
  CtlResult full = create_snapshot(vm, work.file("full"));
  EXPECT_EQ(full.status, 0) << full.output;
  CtlResult diff = create_snapshot(vm, work.file("diff"), /*diff=*/true);
  EXPECT_EQ(diff.status, 0) << diff.output;
  EXPECT_EQ(vm_state(vm), "paused");
  const size_t passes = count_of(vm.serial(), "B");
  ASSERT_EQ(vm_action(vm, "resume"), "");
  EXPECT_TRUE(vm.wait_serial("B", kGuestTimeout, passes + 2)) << "no passes after the refusals";
  EXPECT_EQ(vm_action(vm, "shutdown"), "");
  EXPECT_EQ(vm.wait_exit(kApiTimeout), 0) << vm.stderr_text();
}

}  // namespace
}  // namespace godwit::test
