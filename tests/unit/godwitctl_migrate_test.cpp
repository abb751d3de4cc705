// godwitctl migrate | migrate-status | migrate-cancel, run in-process against
// a real HttpServer with the /migration routes and a fake MigrationControl
// that records the send body and plays a scripted sequence of statuses
// (built with migration::to_json, so the keys are the real ones). Also the
// pure formatting: progress line, result block, status text, bandwidth,
// channel and compression parsing, and the usage errors (exit 2).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <sstream>

#include "godwitctl_test_support.h"
#include "migration/status_json.h"
#include "migration_status_test_support.h"
#include "tools/godwitctl/command.h"
#include "tools/godwitctl/migrate_commands.h"
#include "vmm/api/migration_routes.h"

namespace godwit::ctl {
namespace {

using migration::MigrationState;
using test::run_ctl;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kMiB = 1024 * 1024;

/// A status document as the VMM would send it.
nlohmann::json status(MigrationState state, uint64_t transferred = 0, uint64_t remaining = 0,
                      uint64_t throughput = 0, uint32_t iterations = 0, std::string error = "") {
  migration::MigrationStatus s;
  s.state = state;
  s.role = migration::MigrationRole::source;
  s.uri = "tcp:10.0.0.2:4444";
  s.error = std::move(error);
  s.transferred_bytes = transferred;
  s.remaining_bytes = remaining;
  s.throughput_bytes_per_s = throughput;
  s.dirty_pages_per_s = 2500;
  s.iterations = iterations;
  s.downtime_limit_ms = 300;
  return migration::to_json(s);
}

/// The shared sample (4 multifd channels, zstd:3), completed.
nlohmann::json completed_status() {
  return migration::to_json(test::sample_migration_status(MigrationState::completed));
}

/// An active migration on 4 multifd channels with zstd level 3: 1000 MiB of
/// pages went out as 256 MiB, a ratio of 3.91.
nlohmann::json multifd_status(MigrationState state = MigrationState::active) {
  nlohmann::json j = status(state, 300 * kMiB, 700 * kMiB, 100'000'000, 2);
  j["channels"] = 4;
  j["compression"] = "zstd:3";
  j["multifd_bytes"] = 256 * kMiB;
  j["uncompressed_bytes"] = 1000 * kMiB;
  return j;
}

/// start() records the body and answers "setup"; status() plays `script`
/// one entry per call and then repeats the last one.
class ScriptedMigration : public api::MigrationControl {
 public:
  Result<nlohmann::json> start(const nlohmann::json& request) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    if (refuse_) return api::vm_conflict("a migration is already running (state active)");
    return status(MigrationState::setup);
  }
  nlohmann::json status() override {
    std::lock_guard lock(mutex_);
    ++status_calls_;
    changed_.notify_all();
    if (script_.empty()) return status(MigrationState::none);
    nlohmann::json s = script_[std::min(next_, script_.size() - 1)];
    ++next_;
    return s;
  }
  Result<nlohmann::json> cancel() override {
    std::lock_guard lock(mutex_);
    ++cancels_;
    if (refuse_) return fail("no migration to cancel (state none)");
    return status(MigrationState::cancelling);
  }

  void play(std::vector<nlohmann::json> script) {
    std::lock_guard lock(mutex_);
    script_ = std::move(script);
    next_ = 0;
  }
  void refuse() {
    std::lock_guard lock(mutex_);
    refuse_ = true;
  }
  std::vector<nlohmann::json> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int cancels() {
    std::lock_guard lock(mutex_);
    return cancels_;
  }
  /// Waits (at most 30 s, so a broken client fails instead of hanging) until
  /// status() was called `calls` times.
  bool wait_for_status_calls(int calls) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(30),
                             [&] { return status_calls_ >= calls; });
  }

 private:
  static nlohmann::json status(MigrationState state) { return ctl::status(state); }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<nlohmann::json> requests_;
  std::vector<nlohmann::json> script_;
  size_t next_ = 0;
  int status_calls_ = 0;
  int cancels_ = 0;
  bool refuse_ = false;
};

class GodwitctlMigrate : public ::testing::Test {
 protected:
  void SetUp() override {
    api::Router router;
    api::register_migration_routes(router, migration_);
    auto started = server_.start(std::move(router));
    ASSERT_TRUE(started) << started.error().message;
  }
  test::CtlRun ctl(std::vector<std::string> args, bool terminal = false) {
    return server_.ctl(std::move(args), terminal);
  }
  /// setup, active x3 (advancing), device, then `last`.
  void play_to(nlohmann::json last) {
    migration_.play({status(MigrationState::setup),
                     status(MigrationState::active, 100 * kMiB, 900 * kMiB, 100'000'000, 1),
                     status(MigrationState::active, 500 * kMiB, 500 * kMiB, 100'000'000, 2),
                     status(MigrationState::active, 900 * kMiB, 100 * kMiB, 100'000'000, 3),
                     status(MigrationState::device, 1000 * kMiB, 24 * kMiB, 100'000'000, 4),
                     std::move(last)});
  }

  ScriptedMigration migration_;
  test::CtlServer server_;
};

TEST_F(GodwitctlMigrate, OptionsBecomeTheRequestBody) {
  auto run = ctl({"migrate", "tcp:10.0.0.2:4444", "--downtime-limit-ms", "50", "--max-bandwidth",
                  "100M", "--auto-converge", "--dirty-tracking", "ring"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.out, "migration to tcp:10.0.0.2:4444 started\n");
  EXPECT_EQ(run.err, "");
  ASSERT_EQ(migration_.requests().size(), 1u);
  EXPECT_EQ(migration_.requests()[0], (nlohmann::json{{"uri", "tcp:10.0.0.2:4444"},
                                                      {"downtime_limit_ms", 50},
                                                      {"max_bandwidth", 104857600},
                                                      {"auto_converge", true},
                                                      {"dirty_tracking", "ring"}}));

  // Only the URI: every other member is left to the VMM's defaults.
  ASSERT_EQ(ctl({"migrate", "unix:/run/dst.sock"}).exit_code, kExitOk);
  EXPECT_EQ(migration_.requests()[1], (nlohmann::json{{"uri", "unix:/run/dst.sock"}}));
  // Options before the URI, a plain byte rate.
  ASSERT_EQ(ctl({"migrate", "--max-bandwidth", "65536", "tcp:h:1"}).exit_code, kExitOk);
  EXPECT_EQ(migration_.requests()[2],
            (nlohmann::json{{"uri", "tcp:h:1"}, {"max_bandwidth", 65536}}));
  EXPECT_EQ(migration_.cancels(), 0);
}

TEST_F(GodwitctlMigrate, ChannelsAndCompressionBecomeTheRequestBody) {
  ASSERT_EQ(ctl({"migrate", "tcp:h:1", "--channels", "4", "--compress", "zstd:3"}).exit_code,
            kExitOk);
  ASSERT_EQ(migration_.requests().size(), 1u);
  EXPECT_EQ(migration_.requests()[0],
            (nlohmann::json{{"uri", "tcp:h:1"}, {"channels", 4}, {"compression", "zstd:3"}}));
  // Plain "zstd" is passed as typed (the VMM reads it as level 1); channels
  // without --compress leave compression to the VMM's default (none).
  ASSERT_EQ(ctl({"migrate", "tcp:h:1", "--compress", "zstd", "--channels", "64"}).exit_code,
            kExitOk);
  EXPECT_EQ(migration_.requests()[1],
            (nlohmann::json{{"uri", "tcp:h:1"}, {"channels", 64}, {"compression", "zstd"}}));
  ASSERT_EQ(ctl({"migrate", "tcp:h:1", "--channels", "1"}).exit_code, kExitOk);
  EXPECT_EQ(migration_.requests()[2], (nlohmann::json{{"uri", "tcp:h:1"}, {"channels", 1}}));
  // "none" needs no channels; 0 channels is sent as asked.
  ASSERT_EQ(ctl({"migrate", "tcp:h:1", "--channels", "0", "--compress", "none"}).exit_code,
            kExitOk);
  EXPECT_EQ(migration_.requests()[3],
            (nlohmann::json{{"uri", "tcp:h:1"}, {"channels", 0}, {"compression", "none"}}));
}

TEST_F(GodwitctlMigrate, BadChannelsOrCompressionNeverReachTheVmm) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"migrate", "tcp:h:1", "--channels", "65"},
           {"migrate", "tcp:h:1", "--compress", "zstd"},
           {"migrate", "tcp:h:1", "--channels", "2", "--compress", "zstd:20"},
       }) {
    EXPECT_EQ(ctl(args).exit_code, kExitUsage) << args[3];
  }
  EXPECT_TRUE(migration_.requests().empty());
}

TEST_F(GodwitctlMigrate, JsonPrintsTheStatusTheVmmAnswered) {
  auto run = ctl({"--json", "migrate", "tcp:10.0.0.2:4444"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  auto j = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << run.out;
  EXPECT_EQ(j["state"], "setup");
  EXPECT_EQ(j["uri"], "tcp:10.0.0.2:4444");
}

TEST_F(GodwitctlMigrate, ARefusedSendIsExit1WithTheMessage) {
  migration_.refuse();
  auto run = ctl({"migrate", "tcp:h:1", "--wait"});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_THAT(run.err, HasSubstr("a migration is already running (state active) (HTTP 409)"));
  EXPECT_EQ(run.out, "");
}

TEST_F(GodwitctlMigrate, WaitOnATerminalRedrawsOneLineThenPrintsTheResult) {
  play_to(completed_status());
  auto run = ctl({"migrate", "tcp:10.0.0.2:4444", "--wait"}, /*terminal=*/true);
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.err, "");
  // Every status redraws the same line: carriage returns, one newline at the end.
  const size_t result = run.out.find("migration completed\n");
  ASSERT_NE(result, std::string::npos) << run.out;
  const std::string progress = run.out.substr(0, result);
  EXPECT_EQ(std::count(progress.begin(), progress.end(), '\n'), 1) << progress;
  EXPECT_GE(std::count(progress.begin(), progress.end(), '\r'), 6) << progress;
  EXPECT_THAT(progress, HasSubstr(" 50.0%  500.0 MiB sent, 500.0 MiB left, 100.0 MB/s, dirty 2500 "
                                  "pages/s, iteration 2, ETA 6s, active"));
  EXPECT_THAT(progress, HasSubstr("100.0%"));
  EXPECT_THAT(progress, HasSubstr(", completed"));

  const std::string block = run.out.substr(result);
  EXPECT_THAT(block, HasSubstr("  total time:         5.3 s (setup 12 ms)\n"));
  EXPECT_THAT(block, HasSubstr("  downtime:           87 ms (limit 300 ms)\n"));
  EXPECT_THAT(block, HasSubstr("    final dirty sync: 1.234 ms\n"));
  EXPECT_THAT(block, HasSubstr("    last RAM delta:   20.500 ms\n"));
  EXPECT_THAT(block, HasSubstr("    device state:     3.100 ms\n"));
  EXPECT_THAT(block, HasSubstr("    destination load: 40.000 ms\n"));
  EXPECT_THAT(block, HasSubstr("    resume:           0.800 ms\n"));
  EXPECT_THAT(block, HasSubstr("  transferred:        1 GiB, average 201.8 MB/s\n"));
  EXPECT_THAT(block, HasSubstr("  pages:              261000 normal, 1000 zero\n"));
  EXPECT_THAT(block, HasSubstr("  iterations:         4\n"));
  EXPECT_THAT(block, HasSubstr("  multifd:            4 channels zstd:3 ratio 3.91x"));
  EXPECT_THAT(block, Not(HasSubstr("error")));
}

TEST_F(GodwitctlMigrate, WaitNotOnATerminalPrintsOneLinePerStateChange) {
  play_to(completed_status());
  auto run = ctl({"migrate", "tcp:10.0.0.2:4444", "--wait"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.out.find('\r'), std::string::npos);
  std::vector<std::string> states;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("[")) states.push_back(line.substr(line.rfind(", ") + 2));
  }
  EXPECT_EQ(states, (std::vector<std::string>{"setup", "active", "device", "completed"}))
      << run.out;
  EXPECT_THAT(run.out, HasSubstr("migration completed\n"));
}

TEST_F(GodwitctlMigrate, WaitJsonPrintsTheFinalStatusOnly) {
  play_to(completed_status());
  auto run = ctl({"migrate", "tcp:10.0.0.2:4444", "--wait", "--json"}, /*terminal=*/true);
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  auto j = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << run.out;
  EXPECT_EQ(j, completed_status());
}

TEST_F(GodwitctlMigrate, AFailedMigrationIsExit1WithItsError) {  // R56
  migration_.play({status(MigrationState::setup),
                   status(MigrationState::active, 100 * kMiB, 900 * kMiB, 100'000'000, 1),
                   status(MigrationState::failed, 120 * kMiB, 880 * kMiB, 0, 1,
                          "tcp:10.0.0.2:4444: connection closed by peer")});
  auto run = ctl({"migrate", "tcp:10.0.0.2:4444", "--wait"});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_EQ(run.err, "godwitctl: migration failed: tcp:10.0.0.2:4444: connection closed by peer\n");
  EXPECT_THAT(run.out, HasSubstr("migration failed\n"));
  EXPECT_THAT(run.out, HasSubstr("  error:" + std::string(14, ' ') +
                                 "tcp:10.0.0.2:4444: connection closed"));
}

TEST_F(GodwitctlMigrate, ACancelledMigrationIsExit1) {
  migration_.play({status(MigrationState::active, 100 * kMiB, 900 * kMiB, 100'000'000, 1),
                   status(MigrationState::cancelling, 100 * kMiB, 900 * kMiB, 0, 1),
                   status(MigrationState::cancelled, 100 * kMiB, 900 * kMiB, 0, 1)});
  auto run = ctl({"migrate", "tcp:10.0.0.2:4444", "--wait"});
  EXPECT_EQ(run.exit_code, kExitRefused);
  EXPECT_EQ(run.err, "godwitctl: migration cancelled\n");
  EXPECT_THAT(run.out, HasSubstr("migration cancelled\n"));
}

TEST_F(GodwitctlMigrate, AVmmThatGoesAwayDuringWaitIsExit3) {
  // Active forever; the server is stopped while godwitctl polls.
  migration_.play({status(MigrationState::active, 100 * kMiB, 900 * kMiB, 100'000'000, 1)});
  auto running = std::async(std::launch::async, [&] {
    return ctl({"migrate", "tcp:10.0.0.2:4444", "--wait"}, /*terminal=*/true);
  });
  ASSERT_TRUE(migration_.wait_for_status_calls(2));
  server_.stop();
  auto run = running.get();
  EXPECT_EQ(run.exit_code, kExitUnreachable);
  EXPECT_THAT(run.err, HasSubstr("godwitctl: lost contact with the VMM while waiting for the "
                                 "migration (last state: active): "));
  EXPECT_TRUE(run.out.ends_with("\n")) << "the progress line is ended before the error";
}

TEST_F(GodwitctlMigrate, CancelRequestsAndReportsTheState) {
  auto run = ctl({"migrate-cancel"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.out, "migration cancel requested (state: cancelling)\n");
  EXPECT_EQ(migration_.cancels(), 1);

  migration_.refuse();
  auto refused = ctl({"migrate-cancel"});
  EXPECT_EQ(refused.exit_code, kExitRefused);
  EXPECT_EQ(refused.err, "godwitctl: no migration to cancel (state none) (HTTP 409)\n");
}

TEST_F(GodwitctlMigrate, StatusTextAndJson) {
  migration_.play({completed_status()});
  auto run = ctl({"migrate-status"});
  ASSERT_EQ(run.exit_code, kExitOk) << run.err;
  EXPECT_EQ(run.out, format_migration_status(completed_status()));
  EXPECT_THAT(run.out, HasSubstr("state:                completed\n"));

  auto json = ctl({"migrate-status", "--json"});
  ASSERT_EQ(json.exit_code, kExitOk) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out, nullptr, false), completed_status());
}

TEST(GodwitctlMigrateNoServer, AnUnreachableSocketIsExit3) {
  test::TempSocketPath sock;
  for (const char* command : {"migrate-status", "migrate-cancel"}) {
    auto run = run_ctl({"--api-sock", sock.path(), command});
    EXPECT_EQ(run.exit_code, kExitUnreachable) << command;
    EXPECT_THAT(run.err, HasSubstr("cannot connect to " + sock.path()));
  }
}

TEST(GodwitctlMigrateUsage, BadOptionsAreExit2) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"migrate"}, "migrate: missing URI (tcp:HOST:PORT or unix:PATH)"},
           {{"migrate", "--wait"}, "missing URI"},
           {{"migrate", "tcp:h:1", "tcp:h:2"}, "too many positional options"},
           {{"migrate", "tcp:h:1", "--dirty-tracking", "foo"},
            "--dirty-tracking must be bitmap or ring, not 'foo'"},
           {{"migrate", "tcp:h:1", "--max-bandwidth", "12Q"}, "--max-bandwidth: '12Q' is not"},
           {{"migrate", "tcp:h:1", "--max-bandwidth", "-5"}, "--max-bandwidth"},
           {{"migrate", "tcp:h:1", "--downtime-limit-ms", "soon"}, "--downtime-limit-ms: 'soon'"},
           {{"migrate", "tcp:h:1", "--bandwidth", "1"}, "unrecognised option '--bandwidth'"},
           {{"migrate", "tcp:h:1", "--channels", "65"},
            "--channels: '65' is not a number of channels from 0 to 64"},
           {{"migrate", "tcp:h:1", "--channels", "-1"}, "--channels: '-1' is not"},
           {{"migrate", "tcp:h:1", "--channels", "four"}, "--channels: 'four' is not"},
           {{"migrate", "tcp:h:1", "--channels", "4294967297"}, "--channels: '4294967297'"},
           {{"migrate", "tcp:h:1", "--channels"}, "--channels"},
           {{"migrate", "tcp:h:1", "--channels", "2", "--compress", "lz4"},
            "--compress: 'lz4' is not none, zstd or zstd:LEVEL"},
           {{"migrate", "tcp:h:1", "--channels", "2", "--compress", "zstd:0"},
            "--compress: 'zstd:0': the zstd level must be 1 to 19"},
           {{"migrate", "tcp:h:1", "--channels", "2", "--compress", "zstd:20"},
            "the zstd level must be 1 to 19"},
           {{"migrate", "tcp:h:1", "--compress", "zstd:3"},
            "--compress zstd:3 needs multifd channels: add --channels N (N >= 1)"},
           {{"migrate", "tcp:h:1", "--channels", "0", "--compress", "zstd"},
            "--compress zstd needs multifd channels"},
           {{"migrate-status", "extra"}, "unexpected argument 'extra'"},
           {{"migrate-cancel", "--wait"}, "migrate-cancel"},
       }) {
    std::vector<std::string> args = {"--api-sock", "/nonexistent/api.sock"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto run = run_ctl(args);
    EXPECT_EQ(run.exit_code, kExitUsage) << c.args.front() << ": " << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.message));
    EXPECT_THAT(run.err, HasSubstr("--help' for usage"));
  }
}

TEST(GodwitctlMigrateUsage, HelpTellsTheCommandsAndOptions) {
  auto overall = run_ctl({"--help"});
  ASSERT_EQ(overall.exit_code, kExitOk);
  for (const char* line :
       {"  migrate         live-migrate", "  migrate-status  ", "  migrate-cancel  "}) {
    EXPECT_THAT(overall.out, HasSubstr(line));
  }
  auto help = run_ctl({"migrate", "--help"});
  ASSERT_EQ(help.exit_code, kExitOk);
  EXPECT_THAT(help.out,
              HasSubstr("Usage: godwitctl [--api-sock PATH] migrate URI [--downtime-limit-ms N] "
                        "[--max-bandwidth BYTES_PER_S] [--auto-converge] [--dirty-tracking "
                        "bitmap|ring] [--channels N] [--compress none|zstd[:LEVEL]] [--wait]"));
  for (const char* option :
       {"--downtime-limit-ms N", "--max-bandwidth BYTES_PER_S", "--auto-converge",
        "--dirty-tracking bitmap|ring", "--channels N", "--compress none|zstd[:LEVEL]", "--wait"}) {
    EXPECT_THAT(help.out, HasSubstr(option));
  }
  // What the multifd options do, their defaults and ranges (help text wraps,
  // so only short phrases are checked).
  for (const char* phrase : {"extra connections", "in parallel", "default 0", "0 to 64",
                             "needs --channels", "1 (default, fastest) to 19"}) {
    EXPECT_THAT(help.out, HasSubstr(phrase));
  }
  EXPECT_THAT(help.out, Not(HasSubstr("--uri"))) << "the URI is positional";
}

// --- the pure formatting ---

TEST(MigrateFormat, ProgressLine) {
  EXPECT_EQ(format_migration_progress(
                status(MigrationState::active, 256 * kMiB, 768 * kMiB, 50'000'000, 3)),
            "[=====>              ]  25.0%  256.0 MiB sent, 768.0 MiB left, 50.0 MB/s, dirty "
            "2500 pages/s, iteration 3, ETA 17s, active");
  // Nothing known yet: 0%, and no ETA without a throughput.
  EXPECT_EQ(format_migration_progress(status(MigrationState::setup)),
            "[                    ]   0.0%  0.0 MiB sent, 0.0 MiB left, 0.0 MB/s, dirty 2500 "
            "pages/s, iteration 0, ETA -, setup");
  EXPECT_THAT(format_migration_progress(status(MigrationState::active, kMiB, kMiB, 0, 1)),
              HasSubstr(" 50.0% "));
  EXPECT_THAT(format_migration_progress(status(MigrationState::active, kMiB, kMiB, 0, 1)),
              HasSubstr("ETA -,"));
  // Long ETAs in minutes and hours.
  EXPECT_THAT(format_migration_progress(status(MigrationState::active, 0, 125'000'000, 1'000'000)),
              HasSubstr("ETA 2m05s,"));
  EXPECT_THAT(
      format_migration_progress(status(MigrationState::active, 0, 3'720'000'000, 1'000'000)),
      HasSubstr("ETA 1h02m,"));
  // Completed is 100% even if the last figures still show something left.
  EXPECT_THAT(format_migration_progress(status(MigrationState::completed, kMiB, kMiB)),
              HasSubstr("[====================] 100.0%"));
  // With multifd channels: their count, the codec and the compression ratio
  // come before the ETA (the state stays last).
  EXPECT_EQ(format_migration_progress(multifd_status()),
            "[======>             ]  30.0%  300.0 MiB sent, 700.0 MiB left, 100.0 MB/s, dirty "
            "2500 pages/s, iteration 2, 4 channels zstd:3 ratio 3.91x, ETA 8s, active");
  nlohmann::json uncompressed = multifd_status();
  uncompressed["channels"] = 1;
  uncompressed["compression"] = "none";
  EXPECT_THAT(format_migration_progress(uncompressed),
              HasSubstr(", iteration 2, 1 channel uncompressed, ETA 8s, active"));
  nlohmann::json nothing_sent_yet = multifd_status(MigrationState::setup);
  nothing_sent_yet["multifd_bytes"] = 0;
  EXPECT_THAT(format_migration_progress(nothing_sent_yet),
              HasSubstr(", 4 channels zstd:3 ratio -, ETA"));
  // Without channels nothing about multifd is shown.
  EXPECT_THAT(format_migration_progress(status(MigrationState::active, kMiB, kMiB, 0, 1)),
              Not(HasSubstr("channel")));
  // A document missing every key still gives a line.
  EXPECT_EQ(format_migration_progress(nlohmann::json::object()),
            "[                    ]   0.0%  0.0 MiB sent, 0.0 MiB left, 0.0 MB/s, dirty 0 pages/s, "
            "iteration 0, ETA -, unknown");
}

TEST(MigrateFormat, StatusTextShowsEveryKey) {
  nlohmann::json s = completed_status();
  s["error"] = "none really";
  s["future_key"] = 7;
  const std::string text = format_migration_status(s);
  for (const char* line : {
           "state:                completed\n",
           "role:                 source\n",
           "uri:                  tcp:10.0.0.2:4444\n",
           "error:                none really\n",
           "total time:           5.3 s\n",
           "setup time:           12 ms\n",
           "downtime:             87 ms (limit 300 ms, expected 90 ms)\n",
           "  final dirty sync:   1.234 ms\n",
           "  last RAM delta:     20.500 ms\n",
           "  device state:       3.100 ms\n",
           "  destination load:   40.000 ms\n",
           "  resume:             0.800 ms\n",
           "transferred:          1 GiB\n",
           "remaining:            5 MiB\n",
           "pages:                261000 normal, 1000 zero\n",
           "throughput:           117.0 MB/s (936.0 Mbps)\n",
           "dirty rate:           2500 pages/s\n",
           "iterations:           4\n",
           "throttle:             20%\n",
           "dirty tracking:       ring\n",
           "multifd:              4 channels zstd:3 ratio 3.91x (1000 MiB of pages in 256 MiB)\n",
           "future_key:           7\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  // The multifd keys are known: none is repeated raw at the end.
  for (const char* raw : {"channels:", "compression:", "multifd_bytes:", "uncompressed_bytes:"})
    EXPECT_THAT(text, Not(HasSubstr(raw)));
  EXPECT_THAT(format_migration_status(status(MigrationState::active)),
              HasSubstr("multifd:              off (pages on the main channel)\n"));
  EXPECT_EQ(format_migration_status("oops"), "\"oops\"\n");
}

TEST(MigrateFormat, ResultShowsMultifdOnlyWithChannels) {
  EXPECT_THAT(format_migration_result(status(MigrationState::completed)),
              Not(HasSubstr("multifd")));
  EXPECT_THAT(format_migration_result(completed_status()),
              HasSubstr("  multifd:            4 channels zstd:3 ratio 3.91x (1000 MiB of pages in "
                        "256 MiB)\n"));
}

TEST(MigrateFormat, Durations) {
  EXPECT_EQ(format_duration_ms(0), "0 ms");
  EXPECT_EQ(format_duration_ms(999), "999 ms");
  EXPECT_EQ(format_duration_ms(5321), "5.3 s");
  EXPECT_EQ(format_duration_ms(125'000), "2m05s");
  EXPECT_EQ(format_duration_ms(3'720'000), "1h02m");
}

TEST(MigrateFormat, Bandwidth) {
  EXPECT_EQ(parse_bandwidth("4096"), 4096u);
  EXPECT_EQ(parse_bandwidth("4K"), 4096u);
  EXPECT_EQ(parse_bandwidth("4k"), 4096u);
  EXPECT_EQ(parse_bandwidth("100M"), 104857600u);
  EXPECT_EQ(parse_bandwidth("2G"), uint64_t{2} << 30);
  for (const char* bad : {"", "M", "12Q", "-5", "1.5M", "0x100", "10MB", "17179869184G"}) {
    EXPECT_FALSE(parse_bandwidth(bad)) << bad;
  }
  EXPECT_EQ(parse_channels("0"), 0u);
  EXPECT_EQ(parse_channels("4"), 4u);
  EXPECT_EQ(parse_channels("64"), 64u);
  for (const char* bad : {"", "65", "-1", "4.0", "four", "18446744073709551617"}) {
    EXPECT_FALSE(parse_channels(bad)) << bad;
  }
  EXPECT_EQ(check_compression("none"), "none");
  EXPECT_EQ(check_compression("zstd"), "zstd");
  EXPECT_EQ(check_compression("zstd:1"), "zstd:1");
  EXPECT_EQ(check_compression("zstd:19"), "zstd:19");
  for (const char* bad : {"", "ZSTD", "lz4", "zstd:", "zstd:0", "zstd:20", "zstd:100", "zstd:-1",
                          "zstd:3x", "zstd3", "none:1"}) {
    EXPECT_FALSE(check_compression(bad)) << bad;
  }
  EXPECT_TRUE(is_terminal_state("completed"));
  EXPECT_TRUE(is_terminal_state("failed"));
  EXPECT_TRUE(is_terminal_state("cancelled"));
  EXPECT_FALSE(is_terminal_state("cancelling"));
  EXPECT_FALSE(is_terminal_state("postcopy-active"));
}

}  // namespace
}  // namespace godwit::ctl
