// The migration engine under faults, without KVM (harness and fakes as in
// migration_engine_test.cpp): cancel in setup and active (R8), a cancel
// racing the switchover (R10), the destination gone in setup / active /
// switchover, a destination load error, a VM stop failure (R56), memory
// size, TSC and switchover-ack mode mismatches at setup (R34), a corrupted
// byte and a cut connection through a proxy, malformed return-path
// messages (R57) and a destination that stops reading. In every case the
// source keeps running with its memory intact (a-b check), the destination
// never runs the guest, and the source can migrate again.
#include "migration_engine_support.h"

namespace godwit::migration {
namespace {

using namespace engine_test;  // NOLINT(google-build-using-namespace)

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
  wait_until_active(engine);
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
