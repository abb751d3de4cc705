// The VMM's MigrationControl over the engine, without KVM: request errors
// map to 400, conflicts (a migration already running, nothing to cancel) to
// 409, status documents come from the engine; the destination variant
// reports the incoming migration, refuses start and cancel with 409, and
// forwards both once handed over to a source control.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "migration/engine.h"
#include "migration/status_json.h"
#include "migration/transport.h"
#include "vmm/api/vm_control.h"
#include "vmm/migration/migration_control.h"

namespace godwit {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

/// A source VM that never gets past setup in these tests (the listener
/// below never answers SETUP), so nothing of it is migrated.
class IdleSource final : public migration::SourceVm {
 public:
  migration::wire::VmDescription describe() override {
    migration::wire::VmDescription d;
    d.memory.push_back({0, 1 << 20});
    d.vcpus = 1;
    return d;
  }
  Result<void> start_dirty_tracking(migration::DirtyTracking) override { return {}; }
  void stop_dirty_tracking() override {}
  std::vector<migration::Migratable*> migratables() override { return {}; }
  bool running() override { return true; }
  Result<void> stop() override { return {}; }
  Result<void> resume() override { return {}; }
};

class IdleDestination final : public migration::DestinationVm {
 public:
  migration::wire::VmDescription describe() override { return IdleSource().describe(); }
  std::vector<migration::Migratable*> migratables() override { return {}; }
  Result<void> finish_load() override { return {}; }
  Result<void> start() override { return {}; }
};

/// A TCP listener on loopback that accepts the connection into its backlog
/// and never answers: the source waits in setup until cancelled.
struct SilentPeer {
  SilentPeer() {
    auto address = migration::parse_address("tcp:127.0.0.1:0");
    auto l = migration::Listener::listen(*address);
    EXPECT_TRUE(l) << l.error().message;
    listener.emplace(std::move(*l));
    uri = listener->bound().text();
  }
  std::optional<migration::Listener> listener;
  std::string uri;
};

int http_status(const Error& e) { return api::http_status_for(e, 409); }

TEST(SourceMigrationControl, StatusBeforeAnyMigrationIsNone) {
  IdleSource vm;
  migration::MigrationSource engine(vm);
  SourceMigrationControl control(engine);
  const nlohmann::json s = control.status();
  EXPECT_EQ(s.at("state"), "none");
  EXPECT_EQ(s.at("role"), "none");
}

TEST(SourceMigrationControl, MalformedRequestsAre400AndStartNothing) {
  IdleSource vm;
  migration::MigrationSource engine(vm);
  SourceMigrationControl control(engine);
  for (const nlohmann::json& body : {
           nlohmann::json::array(),
           nlohmann::json{{"downtime_limit_ms", 300}},                // no uri
           nlohmann::json{{"uri", "tcp:127.0.0.1:1"}, {"bogus", 1}},  // unknown member
           nlohmann::json{{"uri", "tcp:127.0.0.1:1"}, {"downtime_limit_ms", -5}},
           nlohmann::json{{"uri", "ftp://host"}},  // bad address
           nlohmann::json{{"uri", "tcp:host:99999"}},
           // multifd: too many channels, compression without channels, unknown codec
           nlohmann::json{{"uri", "tcp:127.0.0.1:1"}, {"channels", 65}},
           nlohmann::json{{"uri", "tcp:127.0.0.1:1"}, {"compression", "zstd"}},
           nlohmann::json{{"uri", "tcp:127.0.0.1:1"}, {"channels", 2}, {"compression", "lz4"}},
       }) {
    auto r = control.start(body);
    ASSERT_FALSE(r) << body.dump();
    EXPECT_EQ(http_status(r.error()), 400) << body.dump() << ": " << r.error().message;
  }
  EXPECT_EQ(control.status().at("state"), "none");
}

TEST(SourceMigrationControl, SecondStartIs409AndCancelEndsTheFirst) {
  IdleSource vm;
  SilentPeer peer;
  migration::EngineTuning tuning;
  tuning.reply_timeout = std::chrono::milliseconds(120'000);  // only the cancel ends it
  migration::MigrationSource engine(vm, tuning);
  SourceMigrationControl control(engine);

  auto started = control.start({{"uri", peer.uri}});
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(started->at("role"), "source");
  EXPECT_EQ(started->at("uri"), peer.uri);

  auto again = control.start({{"uri", peer.uri}});
  ASSERT_FALSE(again);
  EXPECT_EQ(http_status(again.error()), 409);
  EXPECT_THAT(again.error().message, HasSubstr("already"));

  auto cancelled = control.cancel();
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  const migration::MigrationStatus end = engine.wait();
  EXPECT_EQ(end.state, migration::MigrationState::cancelled) << end.error;
  EXPECT_EQ(control.status().at("state"), "cancelled");

  auto nothing = control.cancel();
  ASSERT_FALSE(nothing);
  EXPECT_EQ(http_status(nothing.error()), 409);
}

TEST(SourceMigrationControl, AFailingStartCheckStartsNothing) {
  IdleSource vm;
  migration::MigrationSource engine(vm);
  SourceMigrationControl control(engine, [] { return api::vm_conflict("not now"); });
  auto r = control.start({{"uri", "tcp:127.0.0.1:1"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(http_status(r.error()), 409);
  EXPECT_THAT(r.error().message, HasSubstr("not now"));
  EXPECT_EQ(control.status().at("state"), "none");
}

TEST(DestinationMigrationControl, ReportsTheIncomingMigrationAndRefusesStartAndCancel) {
  IdleDestination vm;
  migration::MigrationDestination engine(vm);
  DestinationMigrationControl control(engine);
  EXPECT_EQ(control.status(), migration::to_json(engine.status()));
  auto start = control.start({{"uri", "tcp:127.0.0.1:1"}});
  ASSERT_FALSE(start);
  EXPECT_EQ(http_status(start.error()), 409);
  EXPECT_THAT(start.error().message, HasSubstr("--incoming"));
  auto cancel = control.cancel();
  ASSERT_FALSE(cancel);
  EXPECT_EQ(http_status(cancel.error()), 409);
  EXPECT_THAT(cancel.error().message, HasSubstr("cancel it on the source"));
}

TEST(DestinationMigrationControl, AfterHandOverStartAndCancelGoToTheSource) {
  IdleDestination dest_vm;
  migration::MigrationDestination incoming(dest_vm);
  DestinationMigrationControl control(incoming);
  IdleSource source_vm;
  migration::MigrationSource outgoing(source_vm);
  SourceMigrationControl source(outgoing);
  control.hand_over(source);

  // No outgoing migration yet: the status is still the incoming one.
  EXPECT_EQ(control.status(), migration::to_json(incoming.status()));
  auto bad = control.start({{"uri", "nope"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(http_status(bad.error()), 400) << "forwarded to the source control";
  auto nothing = control.cancel();
  ASSERT_FALSE(nothing);
  EXPECT_THAT(nothing.error().message, HasSubstr("no migration in progress"));
}

}  // namespace
}  // namespace godwit
