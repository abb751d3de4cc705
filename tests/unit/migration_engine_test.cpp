// The migration engine end to end without KVM: a MigrationSource and a
// MigrationDestination in one process, over loopback TCP or a unix socket,
// with fake VMs. The source "guest" is an a-b dirtier thread writing real
// guest memory (GuestMemory, memfd) and marking the pages it writes the way
// KVM's dirty log would; the destination loads into fresh memory.
//
// Covered here: completion (byte-equal memory, a-b check, device state),
// R1 (reachable states are R1 strings), R4 (legal transitions, PONGs racing
// completion and failure), R8 (cancel refused without a migration and in
// postcopy states), R12 (one dirty harvest per exact query, final included),
// R13/R14 (a device with only stop-copy data completes), R19-R22 (final
// query after the stop), the downtime report, a final delta larger than a
// frame, auto-converge, refused starts. The faults are in
// migration_engine_faults_test.cpp, the harness in migration_engine_support.h.
#include "migration_engine_support.h"

namespace godwit::migration {
namespace {

using namespace engine_test;  // NOLINT(google-build-using-namespace)

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

}  // namespace
}  // namespace godwit::migration
