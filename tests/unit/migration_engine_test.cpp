// The migration engine end to end without KVM: a MigrationSource and a
// MigrationDestination in one process, over loopback TCP or a unix socket,
// with fake VMs. The source "guest" is an a-b dirtier thread writing real
// guest memory (GuestMemory, memfd) and marking the pages it writes the way
// KVM's dirty log would; the destination loads into fresh memory.
//
// Covered here: R1 (reachable states are R1 strings), R4 (every transition
// legal, single writer), R8 (cancel refused outside setup/active/device), R9
// (precopy errors fail and resume), R10 (cancel racing the switchover ends in
// cancelled), R12 (one dirty harvest per exact query, final included), R13/R14
// (a device with only stop-copy data completes), R19-R22 (final query after
// the stop), R34 (mode mismatch fails at setup on both sides), R56 (every
// failure has a reason), R57 (malformed return-path messages fail the
// migration naming the message), plus the fault list: cancel in
// active, destination gone in setup / active / switchover, connection cut,
// corrupted byte, destination load error, memory size and TSC mismatch — the
// source keeps running with its memory intact (a-b check) and can migrate again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "migration/engine.h"
#include "migration/ram_migratable.h"
#include "migration_fake_vm.h"
#include "test_util.h"

namespace godwit::migration {
namespace {

using ::testing::HasSubstr;
using namespace fake;  // NOLINT(google-build-using-namespace): the fakes are this test's vocabulary

// --------------------------------------------------------------------------
// harness

/// Legal source transitions (R4) for precopy.
bool legal(MigrationState from, MigrationState to) {
  using S = MigrationState;
  static const std::set<std::pair<S, S>> kLegal = {
      {S::setup, S::active},         {S::active, S::device},     {S::device, S::completed},
      {S::setup, S::failed},         {S::active, S::failed},     {S::device, S::failed},
      {S::setup, S::cancelling},     {S::active, S::cancelling}, {S::device, S::cancelling},
      {S::cancelling, S::cancelled},
  };
  return kLegal.contains({from, to});
}

/// Records transitions and checks them (R4).
struct Trace {
  std::mutex mutex;
  std::vector<std::pair<MigrationState, MigrationState>> steps;
  std::function<void(MigrationState)> on_enter;
  EngineTuning tuning() {
    EngineTuning t;
    t.reply_timeout = std::chrono::milliseconds(10000);
    t.on_transition = [this](MigrationState from, MigrationState to) {
      {
        std::lock_guard lock(mutex);
        steps.emplace_back(from, to);
      }
      if (on_enter) on_enter(to);
    };
    return t;
  }
  void expect_legal() {
    std::lock_guard lock(mutex);
    for (auto [from, to] : steps) {
      EXPECT_TRUE(legal(from, to))
          << "illegal transition " << to_string(from) << " -> " << to_string(to);
    }
  }
  std::vector<MigrationState> states() {
    std::lock_guard lock(mutex);
    std::vector<MigrationState> out;
    for (auto [from, to] : steps) out.push_back(to);
    return out;
  }
};

/// A destination listening on loopback, run on its own thread.
struct Incoming {
  explicit Incoming(FakeDestination& vm, EngineTuning tuning = {},
                    std::string address = "tcp:127.0.0.1:0")
      : engine(vm, std::move(tuning)) {
    auto bound = engine.listen(*parse_address(address));
    EXPECT_TRUE(bound) << bound.error().message;
    if (bound) uri = bound->text();
    thread = std::thread([this] { result = engine.run(); });
  }
  ~Incoming() {
    engine.abort();
    if (thread.joinable()) thread.join();
  }
  Result<void> finish() {
    thread.join();
    return result;
  }
  MigrationDestination engine;
  std::string uri;
  Result<void> result;
  std::thread thread;
};

SendOptions options_to(const std::string& uri) {
  SendOptions o;
  o.uri = uri;
  o.downtime_limit_ms = 300;
  return o;
}

/// The source guest still runs (makes passes) and its memory is intact.
void expect_source_alive_and_intact(FakeSource& source) {
  EXPECT_TRUE(source.guest.running());
  const uint64_t before = source.guest.passes();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (source.guest.passes() < before + 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(source.guest.passes(), before + 3) << "the source guest makes no progress";
  source.guest.pause();
  EXPECT_EQ(ab_check(*source.memory, kDirtyPages), "");
  source.guest.start();
}

void expect_same_memory(GuestMemory& a, GuestMemory& b) {
  ASSERT_EQ(a.total_size(), b.total_size());
  for (const RegionSpec& r : a.layout()) {
    auto x = a.host_span(r.gpa, r.size);
    auto y = b.host_span(r.gpa, r.size);
    ASSERT_TRUE(x && y);
    ASSERT_EQ(std::memcmp(x->data(), y->data(), r.size), 0) << "region at " << r.gpa << " differs";
  }
}

/// A completed migration, checked in full.
void expect_completed(FakeSource& source, FakeDestination& dest, const MigrationStatus& status) {
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  EXPECT_TRUE(dest.started);
  EXPECT_FALSE(source.guest.running()) << "the source must stay paused after GO";
  expect_same_memory(*source.memory, *dest.memory);
  EXPECT_EQ(ab_check(*dest.memory, kDirtyPages), "");
  EXPECT_EQ(dest.device.blob_, source.device.blob_);
  EXPECT_EQ(source.tracking_starts, 1);
  EXPECT_EQ(source.tracking_stops, 1);
  EXPECT_EQ(source.resumes, 0);
}

/// A failure the source survived: reason present (R56), guest running,
/// destination never started.
void expect_source_survived(FakeSource& source, FakeDestination& dest,
                            const MigrationStatus& status, MigrationState state) {
  EXPECT_EQ(status.state, state) << status.error;
  EXPECT_FALSE(status.error.empty()) << "R56: a failure without a reason";
  EXPECT_FALSE(dest.started) << "the destination ran a half-loaded guest";
  EXPECT_EQ(source.tracking_stops, source.tracking_starts);
  expect_source_alive_and_intact(source);
}

/// A migration to `uri` that must fail on both sides: each side's error
/// names `what`, the source survived, the destination never ran the guest.
MigrationStatus expect_failure_on_both_sides(FakeSource& source, FakeDestination& dest,
                                             Incoming& incoming, MigrationSource& engine,
                                             const std::string& uri, const std::string& what) {
  EXPECT_TRUE(engine.start(options_to(uri)));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr(what));
  expect_source_survived(source, dest, status, MigrationState::failed);
  auto r = incoming.finish();
  EXPECT_FALSE(r);
  if (!r) {
    EXPECT_THAT(r.error().message, HasSubstr(what));
  }
  return status;
}

// --------------------------------------------------------------------------
// success paths

TEST(MigrationEngine, PrecopyOverTcpMovesARunningGuestAndItsDeviceState) {
  Trace trace;
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source, trace.tuning());
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish()) << incoming.result.error().message;
  expect_completed(source, dest, status);
  trace.expect_legal();
  EXPECT_EQ(trace.states(),
            (std::vector<MigrationState>{MigrationState::active, MigrationState::device,
                                         MigrationState::completed}));
  // Figures the status must carry.
  EXPECT_GT(status.transferred_bytes, kDirtyPages * 4096);
  EXPECT_GT(status.normal_pages, 0u);
  EXPECT_GE(status.iterations, 2u);  // at least one dirty sync and the final one
  EXPECT_EQ(status.remaining_bytes, 0u);
  EXPECT_EQ(incoming.engine.status().state, MigrationState::completed);
  // What is left on the source is stale: it never migrates again.
  auto again = engine.start(options_to(incoming.uri));
  ASSERT_FALSE(again);
  EXPECT_THAT(again.error().message, HasSubstr("already been migrated"));
}

TEST(MigrationEngine, R4PongsRacingCompletionAndErrorsNeverCauseAnIllegalTransition) {
  // A PING every round keeps PONGs arriving on the return path while the
  // migration thread completes or fails; the state only ever moves along
  // legal edges and ends where the outcome says.
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Trace trace;
    FakeSource source;
    FakeDestination dest;
    const bool fail_at_end = round % 2 == 1;
    dest.device.fail_load = fail_at_end;
    Incoming incoming(dest);
    EngineTuning tuning = trace.tuning();
    tuning.ping_interval = std::chrono::milliseconds(0);
    MigrationSource engine(source, tuning);
    ASSERT_TRUE(engine.start(options_to(incoming.uri)));
    const MigrationStatus status = engine.wait();
    (void)incoming.finish();
    trace.expect_legal();
    EXPECT_EQ(status.state, fail_at_end ? MigrationState::failed : MigrationState::completed)
        << status.error;
    if (fail_at_end) {
      EXPECT_THAT(status.error, HasSubstr("injected load failure"));
    }
  }
}

TEST(MigrationEngine, R12OneDirtyHarvestPerExactQueryTheFinalIncluded) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  EXPECT_EQ(static_cast<uint32_t>(source.dirty.collects.load()), status.iterations);
}

TEST(MigrationEngine, OverAUnixSocket) {
  FakeSource source;
  FakeDestination dest;
  const std::string path = "/tmp/godwit-engine-test-" + std::to_string(::getpid()) + ".sock";
  Incoming incoming(dest, {}, "unix:" + path);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  expect_completed(source, dest, status);
}

TEST(MigrationEngine, R13R14StopCopyOnlyDeviceCompletesAndIsSentAfterTheStop) {
  // The device reports only stop-copy data from the start; with RAM drained
  // the loop must sync and complete rather than iterate forever.
  FakeSource source;
  source.guest.pause();  // an idle guest: RAM drains in the first round
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  EXPECT_TRUE(dest.device.loaded);
  EXPECT_EQ(dest.device.blob_, source.device.blob_);
  expect_same_memory(*source.memory, *dest.memory);
}

TEST(MigrationEngine, DowntimeReportCoversTheGapTheGuestSaw) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  // The guest-seen gap: its last write on the source to its start on the
  // destination. The source's figure must not be smaller, and its parts must
  // fit inside it.
  const auto gap =
      std::chrono::duration_cast<std::chrono::microseconds>(dest.start_time - source.stop_time);
  EXPECT_GE(status.downtime_ms * 1000 + 1000, static_cast<uint64_t>(gap.count()));
  const DowntimeBreakdown& d = status.downtime;
  EXPECT_LE((d.final_sync_us + d.last_ram_us + d.device_state_us + d.destination_load_us) / 1000,
            status.downtime_ms + 1);
  EXPECT_GT(d.last_ram_us + d.device_state_us, 0u);
}

TEST(MigrationEngine, AFinalDeltaLargerThanOneFrameIsSentInBoundedSections) {
  // A huge downtime limit switches over with almost all of 80 MiB of dirty
  // RAM still pending: more than one frame may carry (64 MiB).
  FakeSource source(128ull << 20, (80ull << 20) / 4096);
  FakeDestination dest(128ull << 20);
  Incoming incoming(dest);
  MigrationSource engine(source);
  SendOptions o = options_to(incoming.uri);
  o.downtime_limit_ms = 600000;
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  EXPECT_GT(status.transferred_bytes, 64ull << 20);
  expect_same_memory(*source.memory, *dest.memory);
  EXPECT_EQ(ab_check(*dest.memory, (80ull << 20) / 4096), "");
}

TEST(MigrationEngine, PausedGuestMigratesAndStaysPausedUntilGo) {
  FakeSource source;
  source.guest.pause();
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  expect_same_memory(*source.memory, *dest.memory);
}

TEST(MigrationEngine, AutoConvergeThrottlesAGuestThatOutrunsTheBandwidth) {
  FakeSource source;
  // A pass over 8 MiB every ~10 ms: 800 MB/s of dirtying, 10x the bandwidth;
  // the threshold (80 MiB/s x 50 ms) is half the set, so only a throttled
  // guest that no longer finishes a pass per round lets it converge.
  source.guest.pace_us = 0;
  source.guest.chunk_delay_us = 300;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  SendOptions o = options_to(incoming.uri);
  o.max_bandwidth_bytes_per_s = 80ull << 20;
  o.downtime_limit_ms = 50;
  o.auto_converge = true;
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  ASSERT_TRUE(incoming.finish());
  ASSERT_EQ(status.state, MigrationState::completed) << status.error;
  ASSERT_FALSE(source.throttles.empty()) << "auto-converge never throttled";
  EXPECT_EQ(source.throttles.back(), 0u) << "the throttle must be lifted at the end";
  expect_same_memory(*source.memory, *dest.memory);
}

// --------------------------------------------------------------------------
// refusals and state rules

TEST(MigrationEngine, R1ReachableStatesAreR1Strings) {
  const std::set<std::string> r1 = {"none",
                                    "setup",
                                    "active",
                                    "device",
                                    "pre-switchover",
                                    "wait-unplug",
                                    "postcopy-device",
                                    "postcopy-active",
                                    "postcopy-paused",
                                    "postcopy-recover-setup",
                                    "postcopy-recover",
                                    "completed",
                                    "failed",
                                    "cancelling",
                                    "cancelled"};
  std::set<std::string> all;
  for (MigrationState s : all_migration_states()) {
    all.insert(std::string(to_string(s)));
    EXPECT_EQ(parse_migration_state(to_string(s)), s);
  }
  EXPECT_EQ(all, r1);
  // Everything precopy reaches is in the set (the other tests trace them).
  for (MigrationState s :
       {MigrationState::none, MigrationState::setup, MigrationState::active, MigrationState::device,
        MigrationState::completed, MigrationState::failed, MigrationState::cancelling,
        MigrationState::cancelled}) {
    EXPECT_TRUE(r1.contains(std::string(to_string(s))));
  }
}

TEST(MigrationEngine, R8CancelRefusedWithoutAMigrationAndInPostcopyStates) {
  FakeSource source;
  MigrationSource engine(source);
  auto r = engine.cancel();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("no migration in progress"));
  for (MigrationState s : {MigrationState::postcopy_device, MigrationState::postcopy_active,
                           MigrationState::postcopy_paused, MigrationState::postcopy_recover_setup,
                           MigrationState::postcopy_recover}) {
    EXPECT_FALSE(cancel_allowed(s)) << to_string(s);
  }
  for (MigrationState s : {MigrationState::setup, MigrationState::active,
                           MigrationState::pre_switchover, MigrationState::device}) {
    EXPECT_TRUE(cancel_allowed(s)) << to_string(s);
  }
}

TEST(MigrationEngine, SecondStartWhileRunningIsRefused) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  SendOptions o = options_to(incoming.uri);
  o.max_bandwidth_bytes_per_s = 4ull << 20;  // keeps it active for a while
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(o));
  auto second = engine.start(o);
  ASSERT_FALSE(second);
  EXPECT_THAT(second.error().message, HasSubstr("already"));
  ASSERT_TRUE(engine.cancel());
  EXPECT_EQ(engine.wait().state, MigrationState::cancelled);
}

TEST(MigrationEngine, BadOptionsAreRefusedBeforeAnythingStarts) {
  FakeSource source;
  MigrationSource engine(source);
  SendOptions o = options_to("tcp:127.0.0.1");
  auto r = engine.start(o);
  ASSERT_FALSE(r);
  o = options_to("tcp:127.0.0.1:1");
  o.downtime_limit_ms = 0;
  EXPECT_FALSE(engine.start(o));
  EXPECT_EQ(engine.status().state, MigrationState::none);
}

// --------------------------------------------------------------------------
// faults: the source keeps running with nothing lost

TEST(MigrationEngine, CancelInActiveResumesTheSourceAndTellsTheDestination) {
  Trace trace;
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source, trace.tuning());
  SendOptions o = options_to(incoming.uri);
  o.max_bandwidth_bytes_per_s = 4ull << 20;
  ASSERT_TRUE(engine.start(o));
  while (engine.status().state != MigrationState::active) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(engine.cancel());
  const MigrationStatus status = engine.wait();
  expect_source_survived(source, dest, status, MigrationState::cancelled);
  trace.expect_legal();
  auto dest_result = incoming.finish();
  ASSERT_FALSE(dest_result);
  EXPECT_THAT(dest_result.error().message, HasSubstr("cancelled by the source"));
  EXPECT_EQ(incoming.engine.status().state, MigrationState::failed);
}

TEST(MigrationEngine, CancelInSetupEndsCancelled) {
  // A "destination" that accepts and never answers SETUP.
  auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
  ASSERT_TRUE(listener);
  const std::string uri = listener->bound().text();
  std::thread peer([&] {
    auto c = listener->accept(std::chrono::milliseconds(10000));
    if (!c) return;
    std::vector<uint8_t> sink(4096);
    while (c->read_exact(std::span(sink.data(), 1))) {
    }
  });
  Trace trace;
  FakeSource source;
  MigrationSource engine(source, trace.tuning());
  ASSERT_TRUE(engine.start(options_to(uri)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(engine.status().state, MigrationState::setup);
  ASSERT_TRUE(engine.cancel());
  const MigrationStatus status = engine.wait();
  EXPECT_EQ(status.state, MigrationState::cancelled) << status.error;
  EXPECT_TRUE(source.guest.running());
  trace.expect_legal();
  peer.join();
}

TEST(MigrationEngine, R10CancelRacingTheSwitchoverEndsCancelledAndResumes) {
  Trace trace;
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource* engine_ptr = nullptr;
  trace.on_enter = [&](MigrationState to) {
    if (to == MigrationState::device) (void)engine_ptr->cancel();
  };
  MigrationSource engine(source, trace.tuning());
  engine_ptr = &engine;
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  EXPECT_EQ(source.resumes, 1);
  expect_source_survived(source, dest, status, MigrationState::cancelled);
  trace.expect_legal();
  EXPECT_FALSE(incoming.finish());
}

TEST(MigrationEngine, DestinationGoneInSetupFailsAndTheSourceRuns) {
  auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
  ASSERT_TRUE(listener);
  const std::string uri = listener->bound().text();
  std::thread peer([&] { (void)listener->accept(std::chrono::milliseconds(10000)); });  // closes
  FakeSource source;
  FakeDestination dest;
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(uri)));
  const MigrationStatus status = engine.wait();
  peer.join();
  expect_source_survived(source, dest, status, MigrationState::failed);
  // Nothing connected at all: a clear "refused".
  listener->close();
  ASSERT_TRUE(engine.start(options_to(uri)));
  const MigrationStatus refused = engine.wait();
  EXPECT_EQ(refused.state, MigrationState::failed);
  EXPECT_THAT(refused.error, HasSubstr("refused"));
}

TEST(MigrationEngine, DestinationGoneInActiveFailsResumesAndCanMigrateAgain) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  SendOptions o = options_to(incoming.uri);
  o.max_bandwidth_bytes_per_s = 16ull << 20;
  ASSERT_TRUE(engine.start(o));
  while (engine.status().transferred_bytes < (4ull << 20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  incoming.engine.abort();  // like kill -9: the socket goes away without ERROR
  const MigrationStatus status = engine.wait();
  expect_source_survived(source, dest, status, MigrationState::failed);
  EXPECT_FALSE(incoming.finish());

  // The same source migrates again, to a new destination.
  FakeDestination dest2;
  Incoming incoming2(dest2);
  ASSERT_TRUE(engine.start(options_to(incoming2.uri)));
  const MigrationStatus again = engine.wait();
  ASSERT_TRUE(incoming2.finish());
  ASSERT_EQ(again.state, MigrationState::completed) << again.error;
  expect_same_memory(*source.memory, *dest2.memory);
  EXPECT_EQ(ab_check(*dest2.memory, kDirtyPages), "");
}

TEST(MigrationEngine, DestinationGoneDuringSwitchoverFailsAndResumes) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  dest.on_finish_load = [&]() -> Result<void> {
    incoming.engine.abort();  // dies after COMPLETE, before LOADED
    return fail("killed");
  };
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  EXPECT_EQ(source.resumes, 1);
  expect_source_survived(source, dest, status, MigrationState::failed);
  EXPECT_FALSE(incoming.finish());
}

TEST(MigrationEngine, DestinationLoadErrorIsReportedOnTheSourceWithItsReason) {
  FakeSource source;
  FakeDestination dest;
  dest.device.fail_load = true;
  Incoming incoming(dest);
  MigrationSource engine(source);
  const MigrationStatus status = expect_failure_on_both_sides(
      source, dest, incoming, engine, incoming.uri, "testdev: injected load failure");
  EXPECT_THAT(status.error, HasSubstr("destination failed"));
}

TEST(MigrationEngine, VmStopFailureFailsWithTheR56Text) {
  FakeSource source;
  source.fail_stop = true;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(incoming.uri)));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr("Failed to stop the VM"));
  expect_source_survived(source, dest, status, MigrationState::failed);
  EXPECT_FALSE(incoming.finish());
}

TEST(MigrationEngine, UnavailableDirtyTrackingFailsAtSetup) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  SendOptions o = options_to(incoming.uri);
  o.dirty_tracking = DirtyTracking::ring;
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr("dirty tracking"));
  expect_source_survived(source, dest, status, MigrationState::failed);
  EXPECT_FALSE(incoming.finish());
}

TEST(MigrationEngine, MemorySizeMismatchFailsAtSetupOnBothSides) {
  FakeSource source;
  FakeDestination dest(kRamBytes * 2);
  Incoming incoming(dest);
  MigrationSource engine(source);
  const MigrationStatus status =
      expect_failure_on_both_sides(source, dest, incoming, engine, incoming.uri, "memory");
  EXPECT_THAT(status.error, HasSubstr("incompatible VM"));
  EXPECT_LT(status.transferred_bytes, 4096u) << "no page may move before setup passes";
}

TEST(MigrationEngine, TscRateMismatchFailsAtSetupOnBothSides) {
  FakeSource source;
  FakeDestination dest;
  dest.tsc_khz = 2'100'000;
  Incoming incoming(dest);
  MigrationSource engine(source);
  expect_failure_on_both_sides(source, dest, incoming, engine, incoming.uri, "TSC");
}

TEST(MigrationEngine, R34SwitchoverAckModeMismatchFailsAtSetupOnBothSides) {
  FakeSource source;
  FakeDestination dest;
  EngineTuning dest_tuning;
  dest_tuning.switchover_ack_mode = wire::SwitchoverAckMode::per_device;
  Incoming incoming(dest, dest_tuning);
  MigrationSource engine(source);  // mode off
  expect_failure_on_both_sides(source, dest, incoming, engine, incoming.uri,
                               "switchover-ack mode not agreed");
}

// --------------------------------------------------------------------------
// a byte-level proxy for stream faults

/// Forwards source -> destination and back; can flip one byte of the
/// source's stream at `flip_at` or cut both directions after `cut_after`.
class Proxy {
 public:
  Proxy(std::string target, uint64_t flip_at, uint64_t cut_after)
      : target_(std::move(target)), flip_at_(flip_at), cut_after_(cut_after) {
    listener_.emplace(*Listener::listen(*parse_address("tcp:127.0.0.1:0")));
    uri = listener_->bound().text();
    thread_ = std::thread([this] { serve(); });
  }
  ~Proxy() {
    listener_->close();
    if (a_.valid()) a_.shutdown();
    if (b_.valid()) b_.shutdown();
    thread_.join();
  }
  std::string uri;

 private:
  void serve() {
    auto a = listener_->accept(std::chrono::milliseconds(10000));
    if (!a) return;
    auto b = connect_to(*parse_address(target_), std::chrono::milliseconds(5000));
    if (!b) return;
    a_ = std::move(*a);
    b_ = std::move(*b);
    std::thread back([this] { pump(b_, a_, false); });
    pump(a_, b_, true);
    back.join();
  }
  void pump(Connection& from, Connection& to, bool forward) {
    std::vector<uint8_t> buf(65536);
    uint64_t offset = 0;
    for (;;) {
      const ssize_t n = ::read(from.fd(), buf.data(), buf.size());
      if (n <= 0) {
        // Pass the half-close on, like a network would.
        ::shutdown(to.fd(), SHUT_WR);
        return;
      }
      if (forward && flip_at_ >= offset && flip_at_ < offset + static_cast<uint64_t>(n)) {
        buf[flip_at_ - offset] ^= 0x10;
      }
      uint64_t len = static_cast<uint64_t>(n);
      if (forward && offset + len > cut_after_) len = cut_after_ > offset ? cut_after_ - offset : 0;
      if (len > 0 && !to.write_all(std::span<const uint8_t>(buf.data(), len))) {
        ::shutdown(from.fd(), SHUT_RD);
        return;
      }
      offset += static_cast<uint64_t>(n);
      if (forward && offset >= cut_after_) break;
    }
    // The cable is cut: both directions die at once.
    from.shutdown();
    to.shutdown();
  }
  std::string target_;
  uint64_t flip_at_;
  uint64_t cut_after_;
  std::optional<Listener> listener_;
  Connection a_;
  Connection b_;
  std::thread thread_;
};

TEST(MigrationEngine, CorruptedByteInTheStreamFailsCleanlyAndTheSourceRuns) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  Proxy proxy(incoming.uri, /*flip_at=*/3u << 20, /*cut_after=*/UINT64_MAX);
  MigrationSource engine(source);
  expect_failure_on_both_sides(source, dest, incoming, engine, proxy.uri, "checksum mismatch");
}

TEST(MigrationEngine, ConnectionCutMidStreamFailsCleanlyAndTheSourceRuns) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  Proxy proxy(incoming.uri, UINT64_MAX, /*cut_after=*/5u << 20);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(options_to(proxy.uri)));
  const MigrationStatus status = engine.wait();
  expect_source_survived(source, dest, status, MigrationState::failed);
  EXPECT_FALSE(incoming.finish());
}

// --------------------------------------------------------------------------
// R57: a fake destination speaking raw frames

/// A raw destination: accepts, answers the hello and SETUP correctly, and
/// hands the connection over (nullopt when the source never got that far).
std::optional<Connection> fake_destination_after_setup(Listener& listener) {
  auto c = listener.accept(std::chrono::milliseconds(10000));
  if (!c) return std::nullopt;
  wire::Hello ours;
  if (!wire::exchange_hello(*c, ours)) return std::nullopt;
  wire::FrameReader reader(*c);
  wire::FrameWriter writer(*c);
  if (!reader.read()) return std::nullopt;
  if (!writer.send(wire::FrameType::setup_accept, wire::encode_setup_accept({}))) {
    return std::nullopt;
  }
  return std::move(*c);
}

/// A raw destination that sends one `type` frame after the setup, then
/// reads until the source hangs up.
void fake_destination_sends(Listener& listener, wire::FrameType type,
                            std::vector<uint8_t> payload) {
  auto c = fake_destination_after_setup(listener);
  if (!c) return;
  wire::FrameWriter writer(*c);
  (void)writer.send(type, payload);
  wire::FrameReader reader(*c);
  while (reader.read()) {
  }
}

TEST(MigrationEngine, R57MalformedReturnPathMessageFailsNamingIt) {
  struct Case {
    wire::FrameType type;
    std::vector<uint8_t> payload;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {wire::FrameType::pong, {1, 2, 3}, "PONG"},
      {wire::FrameType::loaded, {1, 2, 3, 4, 5, 6, 7, 8, 9}, "LOADED"},
      {static_cast<wire::FrameType>(0x0199), {}, "0x0199"},
      {wire::FrameType::section, {}, "SECTION"},  // a main-channel type on the return path
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expect);
    auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
    ASSERT_TRUE(listener);
    const std::string uri = listener->bound().text();
    std::thread peer([&] { fake_destination_sends(*listener, c.type, c.payload); });
    FakeSource source;
    FakeDestination dest;
    MigrationSource engine(source);
    ASSERT_TRUE(engine.start(options_to(uri)));
    const MigrationStatus status = engine.wait();
    EXPECT_THAT(status.error, HasSubstr(c.expect));
    EXPECT_THAT(status.error, HasSubstr("return path"));
    expect_source_survived(source, dest, status, MigrationState::failed);
    peer.join();
  }
}

TEST(MigrationEngine, ADestinationThatStopsReadingWithoutClosingFailsInsteadOfHanging) {
  auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
  ASSERT_TRUE(listener);
  const std::string uri = listener->bound().text();
  std::atomic<bool> done{false};
  std::thread peer([&] {
    auto c = fake_destination_after_setup(*listener);
    while (c && !done) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // never reads
  });
  FakeSource source;
  FakeDestination dest;
  EngineTuning tuning;
  tuning.send_stall_timeout = std::chrono::milliseconds(500);
  MigrationSource engine(source, tuning);
  ASSERT_TRUE(engine.start(options_to(uri)));
  const MigrationStatus status = engine.wait();
  done = true;
  peer.join();
  EXPECT_THAT(status.error, HasSubstr("stopped reading"));
  expect_source_survived(source, dest, status, MigrationState::failed);
}

TEST(MigrationEngine, R57APongForAPingNeverSentFailsTheMigration) {
  auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
  ASSERT_TRUE(listener);
  const std::string uri = listener->bound().text();
  std::thread peer(
      [&] { fake_destination_sends(*listener, wire::FrameType::pong, wire::encode_u32(77)); });
  FakeSource source;
  FakeDestination dest;
  MigrationSource engine(source);
  SendOptions o = options_to(uri);
  o.max_bandwidth_bytes_per_s = 8ull << 20;
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr("PONG 77 answers no PING"));
  expect_source_survived(source, dest, status, MigrationState::failed);
  peer.join();
}

TEST(MigrationEngine, R57UnrequestedSwitchoverAckFailsTheMigration) {
  auto listener = Listener::listen(*parse_address("tcp:127.0.0.1:0"));
  ASSERT_TRUE(listener);
  const std::string uri = listener->bound().text();
  std::thread peer([&] {
    fake_destination_sends(*listener, wire::FrameType::switchover_ack,
                           wire::encode_switchover_ack({{"testdev", 0}, 1}));
  });
  FakeSource source;
  FakeDestination dest;
  MigrationSource engine(source);
  SendOptions o = options_to(uri);
  o.max_bandwidth_bytes_per_s = 8ull << 20;  // the ACK arrives while active
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr("SWITCHOVER_ACK"));
  expect_source_survived(source, dest, status, MigrationState::failed);
  peer.join();
}

}  // namespace
}  // namespace godwit::migration
