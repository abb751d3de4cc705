// The precopy iteration policy (migration/precopy_policy.h) against synthetic
// pending reports: every test names the requirement of
// ../shared/docs/migration-requirements.md §7.2/§7.3 it covers.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>

#include "migration/precopy_policy.h"

namespace godwit::migration {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
// 1 MB/s x 300 ms: a 300,000-byte threshold.
constexpr uint64_t kBandwidth = 1'000'000;
constexpr uint32_t kDowntimeMs = 300;
constexpr uint64_t kThreshold = 300'000;

PendingData dev(uint64_t precopy, uint64_t stopcopy = 0, uint64_t postcopy = 0, uint32_t acks = 0) {
  return PendingData{precopy, stopcopy, postcopy, acks};
}

PrecopyObservation observe(PendingQuery q, std::vector<PendingData> reports) {
  PrecopyObservation o;
  o.query = q;
  o.reports = std::move(reports);
  return o;
}

PrecopyConfig config_with_bandwidth(uint64_t bw = kBandwidth, uint32_t downtime = kDowntimeMs) {
  PrecopyConfig c;
  c.downtime_limit_ms = downtime;
  c.switchover_bandwidth_bytes_per_s = bw;
  return c;
}

// A stand-in for the future engine: asks the fake devices for what the
// policy's phase calls for, counts dirty-log harvests (exact and final
// queries, R12), and does what each decision says.
struct FakeEngine {
  explicit FakeEngine(PrecopyState initial) : state(std::move(initial)) {}

  PrecopyState state;
  /// Reports of every device for (query, iteration).
  std::function<std::vector<PendingData>(PendingQuery, uint32_t)> devices;
  /// ACKs the return path delivered before the observation of `iteration`.
  std::function<uint32_t(uint32_t)> acks = [](uint32_t) { return 0u; };
  bool postcopy_requested = false;
  bool vm_running = true;
  uint32_t harvests = 0;
  std::vector<PrecopyAction> trace;
  std::vector<uint32_t> stalled_at;  // iterations whose decision reported stalled

  PrecopyDecision run(uint32_t max_iterations) {
    PrecopyDecision d;
    while (state.iterations < max_iterations) {
      const PendingQuery q = state.phase == PrecopyPhase::estimate ? PendingQuery::estimate
                             : state.phase == PrecopyPhase::exact  ? PendingQuery::exact
                                                                   : PendingQuery::final;
      if (q != PendingQuery::estimate) ++harvests;
      PrecopyObservation o = observe(q, devices(q, state.iterations));
      o.acks_received = acks(state.iterations);
      o.postcopy_requested = postcopy_requested;
      o.vm_running = vm_running;
      d = next_precopy_decision(state, o);
      trace.push_back(d.action);
      if (d.stalled) stalled_at.push_back(d.state.iterations);
      state = d.state;
      if (d.action == PrecopyAction::complete || d.action == PrecopyAction::fail) break;
    }
    return d;
  }
  [[nodiscard]] size_t count(PrecopyAction a) const { return std::ranges::count(trace, a); }
};

// ---- R11: three classes, the core's total ----

TEST(PrecopyPolicy, R11_TotalIsTheCoresSumOfTheThreeClasses) {
  const std::vector<PendingData> reports{dev(100, 20, 3, 1), dev(0, 4000, 0), dev(5, 0, 600, 2)};
  const PendingTotals t = sum_pending(reports);
  EXPECT_EQ(t.precopy_bytes, 105u);
  EXPECT_EQ(t.stopcopy_bytes, 4020u);
  EXPECT_EQ(t.postcopy_bytes, 603u);
  EXPECT_EQ(t.switchover_ack_requests, 3u);
  EXPECT_EQ(t.total_bytes(), 105u + 4020u + 603u);
  EXPECT_EQ(t.movable_while_running(), 105u + 603u);
  EXPECT_EQ(t.stopped_before_postcopy(), 105u + 4020u);
  EXPECT_EQ(sum_pending({}).total_bytes(), 0u);
}

TEST(PrecopyPolicy, R11_GarbageSizesSaturateAndNeverWrapBelowTheThreshold) {
  // Two devices whose sizes would wrap a 64-bit sum to 1 byte: the total
  // must stay huge, so the policy neither queries exactly nor switches over.
  const std::vector<PendingData> reports{dev(kMax), dev(2)};
  EXPECT_EQ(sum_pending(reports).total_bytes(), kMax);
  EXPECT_EQ(sum_pending(std::vector{dev(kMax, kMax, kMax)}).total_bytes(), kMax);
  const auto d = next_precopy_decision(initial_precopy_state(config_with_bandwidth()),
                                       observe(PendingQuery::estimate, reports));
  EXPECT_EQ(d.action, PrecopyAction::iterate) << d.reason;
  EXPECT_EQ(d.state.last.total_bytes(), kMax) << "the remaining-bytes statistic is the core's sum";
}

// ---- R12: estimate vs exact ----

TEST(PrecopyPolicy, R12_LargeBacklogIteratesOnEstimatesWithoutExactQueries) {
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.devices = [](PendingQuery, uint32_t) { return std::vector{dev(100 * kThreshold)}; };
  e.run(20);
  EXPECT_EQ(e.count(PrecopyAction::iterate), 20u);
  EXPECT_EQ(e.count(PrecopyAction::query_exact), 0u);
  EXPECT_EQ(e.harvests, 0u);
  EXPECT_EQ(e.state.exact_queries, 0u);
}

TEST(PrecopyPolicy, R12_DirtySyncCountEqualsExactQueriesFinalIncluded) {
  // RAM drains by a tenth of the threshold per round, and every exact query
  // finds a little more dirty memory than the estimate showed.
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.devices = [](PendingQuery q, uint32_t i) {
    const uint64_t left = i < 30 ? (30 - i) * (kThreshold / 10) : 0;
    return std::vector{dev(q == PendingQuery::estimate ? left : left + 1000), dev(0, 5000)};
  };
  const auto d = e.run(100);
  ASSERT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_GE(e.count(PrecopyAction::query_exact), 1u);
  EXPECT_EQ(e.harvests, e.count(PrecopyAction::query_exact) + 1) << "exact ones plus one final";
  EXPECT_EQ(e.state.exact_queries, e.harvests);
}

// ---- R13 / R14: exact-sync triggers, stop-only data ----

TEST(PrecopyPolicy, R13_EstimateWithinThresholdAsksForAnExactQuery) {
  const auto s = initial_precopy_state(config_with_bandwidth());
  auto d = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(kThreshold)}));
  EXPECT_EQ(d.action, PrecopyAction::query_exact) << d.reason;
  EXPECT_EQ(d.state.phase, PrecopyPhase::exact);
  d = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(kThreshold + 1)}));
  EXPECT_EQ(d.action, PrecopyAction::iterate) << d.reason;
}

TEST(PrecopyPolicy, R13_OnlyStopCopyDataLeftSyncsEveryIterationAndNeverCompletes) {
  // Requirement test 1: stopcopy = 10 x threshold forever, precopy 0, RAM
  // idle except for a few pages the guest dirties that only the exact query
  // discovers. Every iteration syncs; the migration stays active.
  PrecopyConfig c = config_with_bandwidth();
  c.stall_after_iterations = 5;
  FakeEngine e{initial_precopy_state(c)};
  uint32_t ram_found = 0;
  e.devices = [&](PendingQuery q, uint32_t) {
    const uint64_t ram = q == PendingQuery::estimate ? 0 : 4096 * 3;
    if (ram) ++ram_found;
    return std::vector{dev(ram), dev(0, 10 * kThreshold)};
  };
  const auto d = e.run(50);
  EXPECT_EQ(e.count(PrecopyAction::query_exact), 50u) << "one exact sync per iteration";
  EXPECT_EQ(e.count(PrecopyAction::iterate), 50u);
  EXPECT_EQ(e.count(PrecopyAction::switchover), 0u);
  EXPECT_EQ(ram_found, 50u) << "dirty RAM discovered by every sync, so it gets sent";
  EXPECT_EQ(d.state.phase, PrecopyPhase::estimate) << "still active";
  ASSERT_FALSE(e.stalled_at.empty()) << "a migration that cannot converge is reported";
  EXPECT_EQ(e.stalled_at.front(), 6u);
  EXPECT_NE(d.reason.find("auto-converge"), std::string::npos) << d.reason;
}

TEST(PrecopyPolicy, R13_PostcopyBacklogDoesNotForceAnExactQuery) {
  // Requirement test 2: postcopy on, RAM reports its large backlog as
  // postcopy bytes, so precopy == 0 on every iteration. That alone must not
  // make every iteration a dirty sync (Q19).
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.devices = [](PendingQuery, uint32_t) { return std::vector{dev(0, 0, 50 * kThreshold)}; };
  e.run(20);
  EXPECT_EQ(e.count(PrecopyAction::query_exact), 0u);
  EXPECT_EQ(e.count(PrecopyAction::iterate), 20u);
  EXPECT_FALSE(needs_exact_query(PendingTotals{0, 0, 50 * kThreshold, 0}, kThreshold, false));
  EXPECT_TRUE(needs_exact_query(PendingTotals{0, 10 * kThreshold, 0, 0}, kThreshold, false));
}

TEST(PrecopyPolicy, R14_RaisedDowntimeLimitLetsStopOnlyDataComplete) {
  // The R13 device again, with a downtime limit whose threshold covers the
  // stop-only data: the migration completes within a bounded number of
  // iterations (here the first one).
  FakeEngine e{initial_precopy_state(config_with_bandwidth(kBandwidth, 10 * kDowntimeMs))};
  e.devices = [](PendingQuery, uint32_t) { return std::vector{dev(0), dev(0, 10 * kThreshold)}; };
  const auto d = e.run(5);
  ASSERT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_EQ(e.state.iterations, 0u);
  EXPECT_EQ(
      (std::vector{PrecopyAction::query_exact, PrecopyAction::switchover, PrecopyAction::complete}),
      e.trace);
}

// ---- R15: completion rule ----

TEST(PrecopyPolicy, R15_OneByteAboveThresholdDoesNotCompleteOneByteLessDoes) {
  auto s = initial_precopy_state(config_with_bandwidth());
  ASSERT_EQ(s.threshold_bytes, kThreshold);
  s = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(1000)})).state;
  ASSERT_EQ(s.phase, PrecopyPhase::exact);
  const auto above =
      next_precopy_decision(s, observe(PendingQuery::exact, {dev(kThreshold - 9), dev(0, 10)}));
  EXPECT_EQ(above.action, PrecopyAction::iterate) << above.reason;
  const auto at =
      next_precopy_decision(s, observe(PendingQuery::exact, {dev(kThreshold - 10), dev(0, 10)}));
  EXPECT_EQ(at.action, PrecopyAction::switchover) << at.reason;
  EXPECT_EQ(at.state.phase, PrecopyPhase::final_query);
  EXPECT_EQ(at.state.switchover_kind, SwitchoverKind::precopy);
}

TEST(PrecopyPolicy, R15_NeverSwitchesOverOnAnEstimate) {
  // An estimate within the threshold only asks for an exact query; the
  // exact answer (more dirty pages) decides, and here says no.
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.devices = [](PendingQuery q, uint32_t) {
    return std::vector{dev(q == PendingQuery::estimate ? 10 : 2 * kThreshold)};
  };
  e.run(10);
  EXPECT_EQ(e.count(PrecopyAction::switchover), 0u);
  EXPECT_EQ(e.count(PrecopyAction::query_exact), 10u);
}

TEST(PrecopyPolicy, R15_PrecopyThatNeverShrinksKeepsIteratingAndReportsTheHook) {
  // The guest dirties as fast as we send: precopy stays at 10 x threshold.
  PrecopyConfig c = config_with_bandwidth();
  c.stall_after_iterations = 8;
  c.max_iterations = 30;
  FakeEngine e{initial_precopy_state(c)};
  e.devices = [](PendingQuery, uint32_t) { return std::vector{dev(10 * kThreshold)}; };
  const auto d = e.run(40);
  EXPECT_EQ(e.count(PrecopyAction::switchover), 0u);
  EXPECT_EQ(e.count(PrecopyAction::iterate), 40u) << "the policy never gives up by itself";
  ASSERT_FALSE(e.stalled_at.empty());
  EXPECT_EQ(e.stalled_at.front(), 9u) << "first round sets the lowest total, 8 more without";
  EXPECT_TRUE(d.stalled);
  EXPECT_NE(d.reason.find("max-iterations"), std::string::npos) << d.reason;
}

TEST(PrecopyPolicy, R15_DirtierOutrunningTheBandwidthIsReportedStalled) {
  // RAM's estimate drains between syncs (3T, 2T, 0.9T), but every exact
  // query finds 3T dirty again: rounds never reach a new lowest total.
  PrecopyConfig c = config_with_bandwidth();
  c.stall_after_iterations = 6;
  FakeEngine e{initial_precopy_state(c)};
  e.devices = [](PendingQuery q, uint32_t i) {
    const uint64_t drained[] = {3 * kThreshold, 2 * kThreshold, kThreshold * 9 / 10};
    return std::vector{dev(q == PendingQuery::estimate ? drained[i % 3] : 3 * kThreshold)};
  };
  e.run(30);
  EXPECT_EQ(e.count(PrecopyAction::switchover), 0u);
  EXPECT_EQ(e.count(PrecopyAction::query_exact), 10u) << "one dirty sync per drain";
  EXPECT_FALSE(e.stalled_at.empty());
}

TEST(PrecopyPolicy, R15_ShrinkingPrecopyIsNotReportedAsStalled) {
  PrecopyConfig c = config_with_bandwidth();
  c.stall_after_iterations = 2;
  FakeEngine e{initial_precopy_state(c)};
  e.devices = [](PendingQuery, uint32_t i) {
    return std::vector{dev((40 - i) * kThreshold)};  // never within the threshold
  };
  e.run(30);
  EXPECT_TRUE(e.stalled_at.empty());
}

// ---- R16: threshold ----

TEST(PrecopyPolicy, R16_ThresholdIsSwitchoverBandwidthTimesDowntimeLimit) {
  // 2.5 GB/s = 2.5 MB/ms, x 300 ms.
  const auto s = initial_precopy_state(config_with_bandwidth(2'500'000'000, 300));
  EXPECT_EQ(s.threshold_bytes, 2'500'000ull * 300);
  EXPECT_EQ(switchover_threshold_bytes(1'000, 1), 1u);
  EXPECT_EQ(switchover_threshold_bytes(999, 1), 0u);
  EXPECT_EQ(switchover_threshold_bytes(1'500, 3), 4u) << "rounded down, division last";
  EXPECT_EQ(switchover_threshold_bytes(kMax, std::numeric_limits<uint32_t>::max()), kMax);
}

TEST(PrecopyPolicy, R16_MeasuredBandwidthIsUsedUnlessTheUserGaveOne) {
  PrecopyConfig measured;
  measured.downtime_limit_ms = 100;
  auto o = observe(PendingQuery::estimate, {dev(kMax / 2)});
  o.measured_bandwidth_bytes_per_s = 4'000'000;
  auto d = next_precopy_decision(initial_precopy_state(measured), o);
  EXPECT_EQ(d.state.threshold_bytes, 400'000u);
  // No new window: the previous rate stays.
  auto d2 = next_precopy_decision(d.state, observe(PendingQuery::estimate, {dev(kMax / 2)}));
  EXPECT_EQ(d2.state.threshold_bytes, 400'000u);

  d = next_precopy_decision(initial_precopy_state(config_with_bandwidth(kBandwidth, 100)), o);
  EXPECT_EQ(d.state.threshold_bytes, 100'000u) << "the user's avail-switchover-bandwidth wins";
}

TEST(PrecopyPolicy, R16_ThresholdIsZeroUntilTheFirstWindowSoOnlyNothingLeftCompletes) {
  PrecopyConfig c;  // no user bandwidth, nothing measured yet
  auto s = initial_precopy_state(c);
  EXPECT_EQ(s.threshold_bytes, 0u);
  auto d = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(1)}));
  EXPECT_EQ(d.action, PrecopyAction::iterate) << d.reason;
  d = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(0)}));
  ASSERT_EQ(d.action, PrecopyAction::query_exact) << d.reason;
  d = next_precopy_decision(d.state, observe(PendingQuery::exact, {dev(0)}));
  EXPECT_EQ(d.action, PrecopyAction::switchover) << d.reason;
}

TEST(PrecopyPolicy, R16_ZeroBandwidthEstimateDividesByNothing) {
  PrecopyConfig c;
  FakeEngine e{initial_precopy_state(c)};
  e.devices = [](PendingQuery, uint32_t i) { return std::vector{dev(i < 5 ? 4096 : 0)}; };
  // A window ended with nothing transferred: rate 0.
  auto o = observe(PendingQuery::estimate, {dev(4096)});
  o.measured_bandwidth_bytes_per_s = 0;
  e.state = next_precopy_decision(e.state, o).state;
  EXPECT_EQ(e.state.threshold_bytes, 0u);
  const auto d = e.run(20);
  ASSERT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_NE(d.reason.find("no bandwidth measured"), std::string::npos) << d.reason;
  EXPECT_EQ(expected_downtime_ms(4096, 0), std::nullopt);
  EXPECT_EQ(expected_downtime_ms(1'000'001, 1'000'000), 1001u) << "rounded up";
  EXPECT_EQ(expected_downtime_ms(kMax, 1), kMax);
}

// ---- R17: postcopy start (the trigger counts stop-only data) ----

TEST(PrecopyPolicy, R17_PostcopyStartWaitsForStopCopyDataToFit) {
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.postcopy_requested = true;
  // RAM: big postcopy-able backlog; a device with stop-only data that
  // shrinks below the threshold from iteration 3 on.
  e.devices = [](PendingQuery, uint32_t i) {
    return std::vector{dev(0, 0, 100 * kThreshold), dev(0, i < 3 ? 2 * kThreshold : kThreshold)};
  };
  const auto d = e.run(10);
  ASSERT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_EQ(e.state.iterations, 3u) << "no postcopy while stop-copy data exceeds the threshold";
  EXPECT_EQ(e.state.switchover_kind, SwitchoverKind::postcopy);
  EXPECT_NE(d.reason.find("postcopy"), std::string::npos) << d.reason;

  // The same rule on an exact answer alone: stop-only data over the
  // threshold holds postcopy back even though precopy_bytes is 0.
  PrecopyState s = initial_precopy_state(config_with_bandwidth());
  s.phase = PrecopyPhase::exact;
  auto o = observe(PendingQuery::exact, {dev(0, 0, 100 * kThreshold), dev(0, kThreshold + 1)});
  o.postcopy_requested = true;
  EXPECT_EQ(next_precopy_decision(s, o).action, PrecopyAction::iterate);
  o.reports[1] = dev(0, kThreshold);
  EXPECT_EQ(next_precopy_decision(s, o).action, PrecopyAction::switchover);
  o.postcopy_requested = false;
  EXPECT_EQ(next_precopy_decision(s, o).action, PrecopyAction::iterate) << "only when requested";
}

TEST(PrecopyPolicy, R17_PrecopyCompletionIsPreferredWhenEverythingFits) {
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.postcopy_requested = true;
  e.devices = [](PendingQuery, uint32_t) { return std::vector{dev(10, 10, 10)}; };
  ASSERT_EQ(e.run(3).action, PrecopyAction::complete);
  EXPECT_EQ(e.state.switchover_kind, SwitchoverKind::precopy);
}

// ---- R19-R23: the final query ----

TEST(PrecopyPolicy, R19_ExactlyOneFinalQueryAfterTheSwitchoverThenNoIteration) {
  auto s = initial_precopy_state(config_with_bandwidth());
  s = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(10)})).state;
  const auto sw = next_precopy_decision(s, observe(PendingQuery::exact, {dev(10)}));
  ASSERT_EQ(sw.action, PrecopyAction::switchover);
  ASSERT_EQ(sw.state.phase, PrecopyPhase::final_query);

  // With the vCPUs stopped, only the final query is accepted.
  for (PendingQuery wrong : {PendingQuery::estimate, PendingQuery::exact}) {
    const auto d = next_precopy_decision(sw.state, observe(wrong, {dev(10)}));
    EXPECT_EQ(d.action, PrecopyAction::fail) << to_string(wrong);
    EXPECT_NE(d.reason.find("policy misuse"), std::string::npos) << d.reason;
  }
  const auto done = next_precopy_decision(sw.state, observe(PendingQuery::final, {dev(10)}));
  ASSERT_EQ(done.action, PrecopyAction::complete) << done.reason;
  EXPECT_EQ(done.state.phase, PrecopyPhase::done);
  EXPECT_EQ(done.state.exact_queries, 2u);
  // A second final query, or any iteration, is refused.
  for (PendingQuery q : {PendingQuery::estimate, PendingQuery::exact, PendingQuery::final}) {
    const auto after = next_precopy_decision(done.state, observe(q, {dev(10)}));
    EXPECT_EQ(after.action, PrecopyAction::fail) << to_string(q);
  }
}

TEST(PrecopyPolicy, R20_R21_FinalQueryIsTheOnlyHarvestAfterTheStop) {
  // The engine's final query is the only one after vCPU stop: one harvest
  // after the switchover decision, none in completion (no query is asked for).
  FakeEngine e{initial_precopy_state(config_with_bandwidth())};
  e.devices = [](PendingQuery, uint32_t) { return std::vector{dev(100)}; };
  ASSERT_EQ(e.run(5).action, PrecopyAction::complete);
  const auto sw = std::ranges::find(e.trace, PrecopyAction::switchover);
  ASSERT_NE(sw, e.trace.end());
  EXPECT_EQ(std::distance(sw, e.trace.end()), 2) << "switchover, then exactly one decision";
  EXPECT_EQ(e.harvests, 2u);
}

TEST(PrecopyPolicy, R23_FinalQueryResultIsTheRemainingBytesEvenOverThreshold) {
  // The guest dirtied memory between the decision and the stop: the final
  // query's numbers are kept, and the data is sent anyway (no way back, Q5).
  auto s = initial_precopy_state(config_with_bandwidth());
  s = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(10)})).state;
  s = next_precopy_decision(s, observe(PendingQuery::exact, {dev(10)})).state;
  const auto d =
      next_precopy_decision(s, observe(PendingQuery::final, {dev(kThreshold), dev(0, 50)}));
  ASSERT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_EQ(d.state.last.total_bytes(), kThreshold + 50);
  EXPECT_NE(d.reason.find("over the threshold"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("expected 301 ms of 300 ms"), std::string::npos) << d.reason;
}

// ---- R24, R26, R27, R29, R31: the switchover-ack gate ----

PrecopyConfig with_acks() {
  PrecopyConfig c = config_with_bandwidth();
  c.switchover_ack = true;
  return c;
}

TEST(PrecopyPolicy, R24_AckRequestedInTheSameQueryBlocksThatIterationsSwitchover) {
  auto s = initial_precopy_state(with_acks());
  s = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(10)})).state;
  const auto d = next_precopy_decision(s, observe(PendingQuery::exact, {dev(10), dev(0, 0, 0, 1)}));
  EXPECT_EQ(d.action, PrecopyAction::wait_for_ack) << d.reason;
  EXPECT_EQ(d.state.acks_outstanding(), 1u);
  EXPECT_EQ(d.state.phase, PrecopyPhase::estimate) << "keeps iterating";
}

TEST(PrecopyPolicy, R24_LateAcksHoldTheSwitchoverUntilTheLastOneArrives) {
  // Two devices request an ACK in the very first (estimate) query (Q15);
  // the ACKs arrive in iterations 4 and 7; the data fits all along.
  FakeEngine e{initial_precopy_state(with_acks())};
  e.devices = [](PendingQuery q, uint32_t i) {
    const uint32_t req = (q == PendingQuery::estimate && i == 0) ? 1 : 0;
    return std::vector{dev(1000), dev(0, 10, 0, req), dev(0, 10, 0, req)};
  };
  // Each iteration observes twice (estimate, exact): deliver each ACK once,
  // at the start of iterations 4 and 7.
  uint32_t last_delivered = ~0u;
  e.acks = [&](uint32_t i) {
    if (i == last_delivered || (i != 4 && i != 7)) return 0u;
    last_delivered = i;
    return 1u;
  };
  const auto d = e.run(20);
  ASSERT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_EQ(e.count(PrecopyAction::wait_for_ack), 7u);
  EXPECT_EQ(e.count(PrecopyAction::switchover), 1u);
  EXPECT_EQ(e.state.acks_requested, 2u);
  EXPECT_EQ(e.state.acks_received, 2u);
  EXPECT_TRUE(e.stalled_at.empty()) << "waiting for ACKs is not a convergence problem";
}

TEST(PrecopyPolicy, R26_AcksAreIgnoredWhenTheCapabilityIsOffButUnexpectedOnesFail) {
  auto s = initial_precopy_state(config_with_bandwidth());
  s = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(10, 0, 0, 3)})).state;
  auto d = next_precopy_decision(s, observe(PendingQuery::exact, {dev(10)}));
  EXPECT_EQ(d.action, PrecopyAction::switchover) << "no gate without switchover-ack";
  auto o = observe(PendingQuery::exact, {dev(10)});
  o.acks_received = 1;
  d = next_precopy_decision(s, o);
  EXPECT_EQ(d.action, PrecopyAction::fail) << d.reason;
}

TEST(PrecopyPolicy, R27_AckWithoutARequestIsAnUnderflowAndFails) {
  auto o = observe(PendingQuery::estimate, {dev(kMax / 4)});
  o.acks_received = 1;
  const auto d = next_precopy_decision(initial_precopy_state(with_acks()), o);
  EXPECT_EQ(d.action, PrecopyAction::fail);
  EXPECT_NE(d.reason.find("switchover ack pending num underflowed"), std::string::npos) << d.reason;
  EXPECT_EQ(d.state.phase, PrecopyPhase::done);
}

TEST(PrecopyPolicy, R29_AckRequestedByTheFinalQueryFailsTheMigration) {
  auto s = initial_precopy_state(with_acks());
  s = next_precopy_decision(s, observe(PendingQuery::estimate, {dev(10)})).state;
  s = next_precopy_decision(s, observe(PendingQuery::exact, {dev(10)})).state;
  ASSERT_EQ(s.phase, PrecopyPhase::final_query);
  const auto d = next_precopy_decision(s, observe(PendingQuery::final, {dev(10), dev(0, 0, 0, 2)}));
  EXPECT_EQ(d.action, PrecopyAction::fail);
  EXPECT_EQ(d.reason, "Switchover ACK was requested by 2 devices during switchover (R29)");
}

TEST(PrecopyPolicy, R31_PausedGuestDoesNotWaitForOutstandingAcks) {
  FakeEngine e{initial_precopy_state(with_acks())};
  e.devices = [](PendingQuery q, uint32_t i) {
    return std::vector{dev(10, 0, 0, q == PendingQuery::estimate && i == 0 ? 1 : 0)};
  };
  e.run(3);
  EXPECT_EQ(e.count(PrecopyAction::switchover), 0u) << "running guest: waits for the ACK";
  e.vm_running = false;  // management paused the guest (R30, R31)
  const auto d = e.run(6);
  EXPECT_EQ(d.action, PrecopyAction::complete) << d.reason;
  EXPECT_EQ(e.state.acks_outstanding(), 1u);
}

// ---- the step function itself ----

TEST(PrecopyPolicy, DecisionIsAPureFunctionOfStateAndObservation) {
  auto s = initial_precopy_state(with_acks());
  auto o = observe(PendingQuery::estimate, {dev(5, 6, 7, 1)});
  o.measured_bandwidth_bytes_per_s = 123;
  const auto a = next_precopy_decision(s, o);
  const auto b = next_precopy_decision(s, o);
  EXPECT_EQ(a.action, b.action);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.state.last, b.state.last);
  EXPECT_EQ(a.state.acks_requested, b.state.acks_requested);
  EXPECT_EQ(s.phase, PrecopyPhase::estimate) << "the input state is untouched";
}

TEST(PrecopyPolicy, EveryActionAndPhaseHasAName) {
  EXPECT_EQ(to_string(PrecopyAction::wait_for_ack), "wait_for_ack");
  EXPECT_EQ(to_string(PrecopyAction::query_exact), "query_exact");
  EXPECT_EQ(to_string(PrecopyPhase::final_query), "final_query");
  EXPECT_EQ(to_string(PendingQuery::final), "final");
}

}  // namespace
}  // namespace godwit::migration
