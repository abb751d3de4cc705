// Multifd migrations without KVM (issue 6), with the engine harness and
// fake VMs of the precopy tests: a running a-b guest migrated with 1, 2, 4
// and 8 channels, with and without zstd, over TCP and a unix socket, ending
// with byte-equal memory; a channel slowed down so that packets of one
// round arrive long after the next round's (the round barrier must keep
// them in order); one channel's connection cut or corrupted (the error
// names the channel, the source keeps running, nothing hangs); cancel and a
// destination abort with channels open; the receiver refusing a packet of
// the wrong round and a FLUSH out of order.
#include "migration/multifd.h"
#include "migration/multifd_packet.h"
#include "migration_engine_support.h"
#include "netns_util.h"

namespace godwit::migration {
namespace {

using namespace engine_test;  // NOLINT(google-build-using-namespace)

SendOptions multifd_to(const std::string& uri, uint32_t channels, Compression compression) {
  SendOptions o = options_to(uri);
  o.channels = channels;
  o.compression = compression;
  return o;
}

/// A completed multifd migration: everything expect_completed() checks,
/// plus the channel figures.
void expect_multifd_completed(FakeSource& source, FakeDestination& dest,
                              const MigrationStatus& status, uint32_t channels,
                              Compression compression) {
  expect_completed(source, dest, status);
  EXPECT_EQ(status.channels, channels);
  EXPECT_EQ(status.compression, compression);
  EXPECT_GT(status.multifd_bytes, 0u);
  EXPECT_GE(status.uncompressed_bytes, kDirtyPages * kPageSize)
      << "the first round alone carries every dirtier page";
  EXPECT_GT(status.transferred_bytes, status.multifd_bytes) << "the main channel counts too";
  if (compression.codec == Codec::zstd) {
    // The dirtier's pages are a counter and zeros: they compress.
    EXPECT_LT(status.multifd_bytes * 4, status.uncompressed_bytes);
  } else {
    EXPECT_GE(status.multifd_bytes, status.uncompressed_bytes);
  }
}

struct Case {
  uint32_t channels;
  Compression compression;
};

class MultifdMigration : public ::testing::TestWithParam<Case> {};

TEST_P(MultifdMigration, MovesARunningGuestWithByteEqualMemory) {
  const Case c = GetParam();
  Trace trace;
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source, trace.tuning());
  ASSERT_TRUE(engine.start(multifd_to(incoming.uri, c.channels, c.compression)));
  const MigrationStatus status = engine.wait();
  expect_multifd_completed(source, dest, status, c.channels, c.compression);
  trace.expect_legal();
  ASSERT_TRUE(incoming.finish());
  EXPECT_EQ(incoming.engine.status().channels, c.channels);
}

INSTANTIATE_TEST_SUITE_P(ChannelsAndCodecs, MultifdMigration,
                         ::testing::Values(Case{1, {}}, Case{2, {}}, Case{4, {}}, Case{8, {}},
                                           Case{1, {Codec::zstd, 1}}, Case{2, {Codec::zstd, 1}},
                                           Case{4, {Codec::zstd, 1}}, Case{8, {Codec::zstd, 3}}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::to_string(info.param.channels) + "channels_" +
                                  (info.param.compression.codec == Codec::zstd
                                       ? "zstd" + std::to_string(info.param.compression.level)
                                       : std::string("none"));
                         });

TEST(MultifdMigrationEngine, OverAUnixSocket) {
  FakeSource source;
  FakeDestination dest;
  const std::string path = "/tmp/godwit-multifd-test-" + std::to_string(::getpid()) + ".sock";
  Incoming incoming(dest, {}, "unix:" + path);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(multifd_to(incoming.uri, 4, {Codec::zstd, 1})));
  expect_multifd_completed(source, dest, engine.wait(), 4, {Codec::zstd, 1});
  ASSERT_TRUE(incoming.finish());
}

// The two ends in different network namespaces joined by a veth link, so
// every channel crosses a real (virtual) device instead of loopback; with
// and without multifd. A thread inherits its creator's namespace, so each
// engine's threads live where the thread that started it entered.
TEST(MultifdMigrationEngine, BetweenNetworkNamespacesOverAVethLink) {
  test::VethPair link;
  if (const std::string why = link.create(); !why.empty()) GTEST_SKIP() << why;
  for (const uint32_t channels : {0u, 4u}) {
    SCOPED_TRACE(std::to_string(channels) + " channels");
    FakeSource source;
    FakeDestination dest;
    std::optional<Incoming> incoming;
    std::thread([&] {
      ASSERT_EQ(link.enter_b(), "");
      incoming.emplace(dest, EngineTuning{},
                       std::string("tcp:") + test::VethPair::kAddressB + ":0");
    }).join();
    ASSERT_TRUE(incoming);
    MigrationSource engine(source);
    const Compression compression = channels == 0 ? Compression{} : Compression{Codec::zstd, 1};
    std::thread([&] {
      ASSERT_EQ(link.enter_a(), "");
      ASSERT_TRUE(engine.start(multifd_to(incoming->uri, channels, compression)));
    }).join();
    const MigrationStatus status = engine.wait();
    if (channels == 0) {
      expect_completed(source, dest, status);
    } else {
      expect_multifd_completed(source, dest, status, channels, compression);
    }
    ASSERT_TRUE(incoming->finish());
  }
}

// Channel 0 applies every packet late, so the other channels finish each
// round long before it. Without the round barrier they would apply round
// r+1's copy of a page first and channel 0 would then overwrite it with the
// older copy of round r: memory would differ from the source's and the a-b
// check would see stale counters.
TEST(MultifdMigrationEngine, ASlowChannelNeverAppliesAPageOutOfRoundOrder) {
  FakeSource source;
  FakeDestination dest;
  std::atomic<uint32_t> slow_packets{0};
  std::atomic<uint32_t> max_round{0};
  EngineTuning tuning;
  tuning.multifd_pages_per_packet = 16;
  tuning.multifd_before_apply = [&](uint32_t channel, uint32_t round) {
    uint32_t seen = max_round;
    while (round > seen && !max_round.compare_exchange_weak(seen, round)) {
    }
    if (channel == 0) {
      ++slow_packets;
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  };
  Incoming incoming(dest, tuning);
  EngineTuning source_tuning;
  source_tuning.multifd_pages_per_packet = 16;
  MigrationSource engine(source, source_tuning);
  // The guest keeps rewriting its pages, so most of them travel in several rounds.
  source.guest.pace_us = 0;
  SendOptions o = multifd_to(incoming.uri, 4, {});
  o.auto_converge = true;
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  expect_multifd_completed(source, dest, status, 4, {});
  ASSERT_TRUE(incoming.finish());
  EXPECT_GT(slow_packets.load(), 0u);
  EXPECT_GE(max_round.load(), 3u) << "the test needs pages in several rounds";
}

// The vCPUs stop only once the destination has applied everything sent so
// far: data still in socket buffers and channel queues would otherwise be
// downtime the switchover decision never counted. A slow destination keeps
// many packets in flight; when the source leaves `active`, the destination
// must have received every byte the source had reported sent.
TEST(MultifdMigrationEngine, TheVcpusStopOnlyAfterTheDataInFlightWasApplied) {
  FakeSource source;
  FakeDestination dest;
  EngineTuning slow;
  slow.multifd_before_apply = [](uint32_t, uint32_t) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  };
  Incoming incoming(dest, slow);
  std::optional<uint64_t> sent_by_source;
  std::optional<uint64_t> received_by_destination;
  EngineTuning tuning;
  MigrationSource* engine_ptr = nullptr;
  tuning.on_transition = [&](MigrationState from, MigrationState to) {
    if (from == MigrationState::active && to == MigrationState::device) {
      sent_by_source = engine_ptr->status().transferred_bytes;
      received_by_destination = incoming.engine.status().transferred_bytes;
    }
  };
  MigrationSource engine(source, tuning);
  engine_ptr = &engine;
  ASSERT_TRUE(engine.start(multifd_to(incoming.uri, 2, {})));
  expect_multifd_completed(source, dest, engine.wait(), 2, {});
  ASSERT_TRUE(incoming.finish());
  ASSERT_TRUE(sent_by_source && received_by_destination);
  EXPECT_GE(*received_by_destination, *sent_by_source);
}

// --------------------------------------------------------------------------
// faults on one channel: the error names it, the source keeps running

TEST(MultifdMigrationEngine, CuttingOneChannelFailsNamingItAndTheSourceKeepsRunning) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  // Connection 0 is the main channel; connection 2 is multifd channel 1.
  Proxy proxy(incoming.uri, UINT64_MAX, /*cut_after=*/2u << 20, /*victim=*/2);
  MigrationSource engine(source);
  SendOptions o = multifd_to(proxy.uri, 3, {});
  ASSERT_TRUE(engine.start(o));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr("multifd channel 1"));
  expect_source_survived(source, dest, status, MigrationState::failed);
  auto r = incoming.finish();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("multifd channel 1"));
  // And the source can migrate again, directly this time.
  FakeDestination dest2;
  Incoming incoming2(dest2);
  ASSERT_TRUE(engine.start(multifd_to(incoming2.uri, 3, {})));
  const MigrationStatus again = engine.wait();
  ASSERT_EQ(again.state, MigrationState::completed) << again.error;
  expect_same_memory(*source.memory, *dest2.memory);
  ASSERT_TRUE(incoming2.finish());
}

TEST(MultifdMigrationEngine, ACorruptedByteOnAChannelIsCaughtAndNamesTheChannel) {
  for (const Compression compression : {Compression{}, Compression{Codec::zstd, 1}}) {
    SCOPED_TRACE(to_string(compression));
    FakeSource source;
    FakeDestination dest;
    Incoming incoming(dest);
    // Connection 1 is multifd channel 0; byte 600 is in the first packet's
    // page list (the hello is 37 bytes, the header 48, the list 8 a page).
    Proxy proxy(incoming.uri, /*flip_at=*/600, UINT64_MAX, /*victim=*/1);
    MigrationSource engine(source);
    ASSERT_TRUE(engine.start(multifd_to(proxy.uri, 2, compression)));
    const MigrationStatus status = engine.wait();
    EXPECT_THAT(status.error, HasSubstr("multifd channel 0"));
    EXPECT_THAT(status.error, HasSubstr("mismatch"));
    expect_source_survived(source, dest, status, MigrationState::failed);
    EXPECT_FALSE(incoming.finish());
  }
}

// The destination gives up waiting for the channels (here at once): its
// reason reaches the source, which never gets as far as sending a page.
TEST(MultifdMigrationEngine, ChannelsThatNeverArriveFailBothSidesWithTheDestinationsReason) {
  FakeSource source;
  FakeDestination dest;
  EngineTuning impatient;
  impatient.connect_timeout = std::chrono::milliseconds(0);
  Incoming incoming(dest, impatient);
  MigrationSource engine(source);
  ASSERT_TRUE(engine.start(multifd_to(incoming.uri, 2, {})));
  const MigrationStatus status = engine.wait();
  EXPECT_THAT(status.error, HasSubstr("0 of 2 multifd channels connected within 0 ms"));
  expect_source_survived(source, dest, status, MigrationState::failed);
  EXPECT_EQ(status.normal_pages, 0u);
  EXPECT_FALSE(incoming.finish());
}

TEST(MultifdMigrationEngine, CancelWithChannelsOpenEndsCancelledWithNoThreadLeft) {
  FakeSource source;
  FakeDestination dest;
  Incoming incoming(dest);
  MigrationSource engine(source);
  // Uncompressed: 4 MiB/s of zstd output would carry the whole guest at once.
  SendOptions o = multifd_to(incoming.uri, 4, {});
  o.max_bandwidth_bytes_per_s = 4ull << 20;
  ASSERT_TRUE(engine.start(o));
  wait_until_active(engine);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(engine.cancel());
  const MigrationStatus status = engine.wait();
  expect_source_survived(source, dest, status, MigrationState::cancelled);
  auto r = incoming.finish();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("cancelled by the source"));
}

TEST(MultifdMigrationEngine, DestinationGoneMidwayLeavesTheSourceRunning) {
  FakeSource source;
  FakeDestination dest;
  auto incoming = std::make_unique<Incoming>(dest);
  MigrationSource engine(source);
  SendOptions o = multifd_to(incoming->uri, 4, {});
  o.max_bandwidth_bytes_per_s = 4ull << 20;
  ASSERT_TRUE(engine.start(o));
  wait_until_active(engine);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  incoming.reset();  // aborts and closes every connection
  const MigrationStatus status = engine.wait();
  expect_source_survived(source, dest, status, MigrationState::failed);
}

// --------------------------------------------------------------------------
// the receiver's round rules, spoken to by hand

struct RawChannelPeer {
  RawChannelPeer() {
    listener.emplace(*Listener::listen(*parse_address("tcp:127.0.0.1:0")));
    session = wire::new_session_id();
  }
  /// Starts a receiver of one channel and connects to it as the source would.
  void connect() {
    std::thread accepter([&] {
      auto r = MultifdReceiver::accept(*listener, session, {1, {}}, dest.ram_part, {}, aborted);
      ASSERT_TRUE(r) << r.error().message;
      receiver = std::move(*r);
    });
    auto c = connect_to(listener->bound(), std::chrono::milliseconds(5000));
    ASSERT_TRUE(c);
    connection = std::move(*c);
    wire::Hello hello;
    hello.session_id = session;
    hello.role = wire::ChannelRole::multifd;
    ASSERT_TRUE(wire::exchange_hello(connection, hello));
    accepter.join();
    packets.emplace(connection, Compression{});
  }
  /// Waits for the receiver's failure.
  std::string failure() {
    for (int i = 0; i < 500 && !receiver->failure(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return receiver->failure().value_or("(no failure)");
  }
  FakeDestination dest;
  std::optional<Listener> listener;
  std::array<uint8_t, 16> session{};
  std::atomic<bool> aborted{false};
  std::unique_ptr<MultifdReceiver> receiver;
  Connection connection;
  std::optional<multifd::PacketSender> packets;
};

TEST(MultifdReceiver, APacketOfTheNextRoundBeforeSyncIsRefused) {
  RawChannelPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.connect());
  std::vector<uint8_t> page(kPageSize, 7);
  const std::vector<uint64_t> gpas = {0};
  ASSERT_TRUE(peer.packets->send_pages(1, gpas, page, {}));
  ASSERT_TRUE(peer.packets->send_pages(2, gpas, page, {}));
  EXPECT_EQ(peer.failure(),
            "multifd channel 0: a packet of round 2 arrived in round 1 (rounds end only with "
            "SYNC)");
}

TEST(MultifdReceiver, FlushWaitsForEverySyncAndRefusesRoundsOutOfOrder) {
  RawChannelPeer peer;
  ASSERT_NO_FATAL_FAILURE(peer.connect());
  std::vector<uint8_t> page(kPageSize, 9);
  const std::vector<uint64_t> gpas = {kPageSize};
  ASSERT_TRUE(peer.packets->send_pages(1, gpas, page, {}));
  ASSERT_TRUE(peer.packets->send_sync(1));
  ASSERT_TRUE(peer.receiver->wait_flush(1, peer.aborted));
  // The page of round 1 is in place once FLUSH(1) returns.
  EXPECT_EQ(peer.dest.memory->host_span(kPageSize, 1).value()[0], 9);
  auto skipped = peer.receiver->wait_flush(3, peer.aborted);
  ASSERT_FALSE(skipped);
  EXPECT_EQ(skipped.error().message, "FLUSH of round 3 after round 1");
  // A FLUSH whose SYNC never comes waits until the channel fails.
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    peer.connection.shutdown();
  });
  auto waited = peer.receiver->wait_flush(2, peer.aborted);
  closer.join();
  ASSERT_FALSE(waited);
  EXPECT_THAT(waited.error().message, HasSubstr("multifd channel 0"));
}

TEST(MultifdReceiver, ConnectionsOfAnotherSessionAreIgnored) {
  RawChannelPeer peer;
  // Queued on the listener before the real channel: accepted first.
  auto stranger = connect_to(peer.listener->bound(), std::chrono::milliseconds(5000));
  ASSERT_TRUE(stranger);
  wire::Hello hello;
  hello.session_id = wire::new_session_id();  // not this migration
  hello.role = wire::ChannelRole::multifd;
  ASSERT_TRUE(wire::send_hello(*stranger, hello));
  ASSERT_NO_FATAL_FAILURE(peer.connect());
  EXPECT_FALSE(peer.receiver->failure());
  std::array<uint8_t, 1> byte{};
  EXPECT_FALSE(stranger->read_exact(byte)) << "a stranger gets no answer, only a close";
}

}  // namespace
}  // namespace godwit::migration
