// The precopy loop's rules (precopy_policy.h). Each rule cites the
// requirement it implements; the order of the checks in decide_after_exact()
// is the order of migration-requirements.md §3.3.
#include "migration/precopy_policy.h"

#include <limits>

namespace godwit::migration {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint64_t saturating_add(uint64_t a, uint64_t b) {
  uint64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? kMax : sum;
}

uint64_t saturate(unsigned __int128 v) { return v > kMax ? kMax : static_cast<uint64_t>(v); }

std::string n(uint64_t v) { return std::to_string(v); }

std::string describe(const PendingTotals& t) {
  return "total " + n(t.total_bytes()) + " (precopy " + n(t.precopy_bytes) + ", stopcopy " +
         n(t.stopcopy_bytes) + ", postcopy " + n(t.postcopy_bytes) + ")";
}

PrecopyDecision decided(PrecopyAction action, std::string reason, const PrecopyState& state) {
  return PrecopyDecision{action, std::move(reason), state, false};
}

PrecopyDecision failed(std::string reason, PrecopyState state) {
  state.phase = PrecopyPhase::done;
  return decided(PrecopyAction::fail, std::move(reason), state);
}

// The end of one round (iterate or wait_for_ack): count it and decide
// whether the loop is converging. A round waiting for ACKs is not a lack of
// progress: throttling the guest would not make the destination ACK sooner.
PrecopyDecision end_iteration(PrecopyAction action, std::string reason, PrecopyState s) {
  s.phase = PrecopyPhase::estimate;
  ++s.iterations;
  const uint64_t total = s.last.total_bytes();
  if (!s.lowest_total || total < *s.lowest_total) {
    s.lowest_total = total;
    s.iterations_without_progress = 0;
  } else if (action == PrecopyAction::iterate) {
    ++s.iterations_without_progress;
  }
  const PrecopyConfig& c = s.config;
  bool stalled = false;
  if (c.stall_after_iterations != 0 && s.iterations_without_progress >= c.stall_after_iterations) {
    stalled = true;
    reason += "; not converging: " + n(s.iterations_without_progress) +
              " iterations without a new lowest total (auto-converge hook)";
  }
  if (c.max_iterations != 0 && s.iterations >= c.max_iterations) {
    stalled = true;
    reason += "; not converging: " + n(s.iterations) + " iterations reached the limit of " +
              n(c.max_iterations) + " (max-iterations hook)";
  }
  PrecopyDecision d = decided(action, std::move(reason), s);
  d.stalled = stalled;
  return d;
}

// R26, R31: switchover may proceed when ACKs are off, when the guest is not
// running (nothing to wait for), or when every requested ACK has arrived.
bool can_switchover(const PrecopyState& s, const PrecopyObservation& o) {
  return !s.config.switchover_ack || !o.vm_running || s.acks_outstanding() == 0;
}

// Called with the exact query of this iteration already applied to `s`, so
// the gate sees the ACK requests this very query collected (R24).
PrecopyDecision decide_after_exact(PrecopyState s, const PrecopyObservation& o) {
  const PendingTotals& t = s.last;
  const std::string threshold = "threshold " + n(s.threshold_bytes);
  // R15: precopy completes only on an exact total within the threshold.
  const bool fits_precopy = t.total_bytes() <= s.threshold_bytes;
  // R17: postcopy counts the stop-only data too, since it moves before the
  // destination runs. Plain precopy completion is preferred when both fit:
  // it has no postcopy failure window (R5).
  const bool fits_postcopy =
      o.postcopy_requested && t.stopped_before_postcopy() <= s.threshold_bytes;
  const bool gate_open = can_switchover(s, o);

  if (gate_open && (fits_precopy || fits_postcopy)) {
    s.phase = PrecopyPhase::final_query;
    s.switchover_kind = fits_precopy ? SwitchoverKind::precopy : SwitchoverKind::postcopy;
    std::string why = fits_precopy
                          ? "exact " + describe(t) + " <= " + threshold + " (R15)"
                          : "postcopy requested and exact precopy+stopcopy " +
                                n(t.stopped_before_postcopy()) + " <= " + threshold + " (R17)";
    return decided(PrecopyAction::switchover,
                   why + "; switchover gate open (R24); " +
                       (fits_precopy ? "precopy" : "postcopy") +
                       " switchover: stop vCPUs, then the final query",
                   s);
  }
  if (fits_precopy || fits_postcopy) {
    return end_iteration(PrecopyAction::wait_for_ack,
                         "exact " + describe(t) + " fits the " + threshold + " but " +
                             n(s.acks_outstanding()) + " of " + n(s.acks_requested) +
                             " switchover ACKs are outstanding (R24, R26): keep iterating",
                         s);
  }
  return end_iteration(PrecopyAction::iterate,
                       "exact " + describe(t) + " > " + threshold + " (R15): keep iterating", s);
}

PrecopyDecision decide_after_estimate(PrecopyState s, const PrecopyObservation& o) {
  const PendingTotals& t = s.last;
  const std::string threshold = "threshold " + n(s.threshold_bytes);
  if (needs_exact_query(t, s.threshold_bytes, o.postcopy_requested)) {
    std::string why;
    if (t.total_bytes() <= s.threshold_bytes) {
      why = "estimated " + describe(t) + " <= " + threshold;
    } else if (t.movable_while_running() == 0) {
      why = "only stop-copy data left in the estimate (" + describe(t) + ")";
    } else {
      why = "postcopy requested and estimated precopy+stopcopy " + n(t.stopped_before_postcopy()) +
            " <= " + threshold;
    }
    s.phase = PrecopyPhase::exact;
    return decided(PrecopyAction::query_exact, why + " (R13): exact query", s);
  }
  return end_iteration(PrecopyAction::iterate,
                       "estimated " + describe(t) + " > " + threshold + " with " +
                           n(t.movable_while_running()) +
                           " bytes movable while running: iterate without an exact query (R12)",
                       s);
}

// R19-R23: the one final query, vCPUs stopped. Its result is used, never
// iterated on: the vCPUs stay stopped and everything left moves now.
PrecopyDecision decide_after_final(PrecopyState s) {
  const PendingTotals& t = s.last;
  // R29: a request the final query itself collected cannot be ACKed before
  // the switchover any more. Earlier, still outstanding requests do not count
  // here: they only reach this point when the guest was paused (R30, R31).
  if (s.config.switchover_ack && t.switchover_ack_requests != 0) {
    return failed("Switchover ACK was requested by " + n(t.switchover_ack_requests) +
                      " devices during switchover (R29)",
                  s);
  }
  s.phase = PrecopyPhase::done;
  const bool postcopy = s.switchover_kind == SwitchoverKind::postcopy;
  const uint64_t stopped_bytes = postcopy ? t.stopped_before_postcopy() : t.total_bytes();
  std::string reason = "final query (R19): " + describe(t) + ", " + n(stopped_bytes) +
                       " bytes to move with vCPUs stopped, threshold " + n(s.threshold_bytes);
  if (auto ms = expected_downtime_ms(stopped_bytes, s.expected_bandwidth_bytes_per_s)) {
    reason += ", expected " + n(*ms) + " ms of " + n(s.config.downtime_limit_ms) + " ms";
  } else {
    reason += ", no bandwidth measured";
  }
  if (stopped_bytes > s.threshold_bytes) {
    // The guest dirtied memory between the decision and the stop. Going back
    // to precopy is not offered (Q5): the data is sent and the downtime is
    // reported as it was.
    reason += " (over the threshold: downtime may exceed the limit)";
  }
  reason += postcopy ? "; complete: send stop-copy state, then postcopy"
                     : "; complete: send every device's final state";
  return decided(PrecopyAction::complete, std::move(reason), s);
}

}  // namespace

uint64_t PendingTotals::total_bytes() const {
  return saturating_add(saturating_add(precopy_bytes, stopcopy_bytes), postcopy_bytes);
}

uint64_t PendingTotals::movable_while_running() const {
  return saturating_add(precopy_bytes, postcopy_bytes);
}

uint64_t PendingTotals::stopped_before_postcopy() const {
  return saturating_add(precopy_bytes, stopcopy_bytes);
}

PendingTotals sum_pending(std::span<const PendingData> reports) {
  PendingTotals t;
  for (const PendingData& r : reports) {
    t.precopy_bytes = saturating_add(t.precopy_bytes, r.precopy_bytes);
    t.stopcopy_bytes = saturating_add(t.stopcopy_bytes, r.stopcopy_bytes);
    t.postcopy_bytes = saturating_add(t.postcopy_bytes, r.postcopy_bytes);
    t.switchover_ack_requests =
        saturating_add(t.switchover_ack_requests, r.switchover_ack_requests);
  }
  return t;
}

uint64_t switchover_threshold_bytes(uint64_t expected_bandwidth_bytes_per_s,
                                    uint32_t downtime_limit_ms) {
  // bytes/ms x ms, with the division last so that rates below 1000 B/s and
  // odd rates keep their precision; 128-bit so that no product wraps.
  return saturate(static_cast<unsigned __int128>(expected_bandwidth_bytes_per_s) *
                  downtime_limit_ms / 1000);
}

std::optional<uint64_t> expected_downtime_ms(uint64_t bytes, uint64_t bandwidth_bytes_per_s) {
  if (bandwidth_bytes_per_s == 0) return std::nullopt;
  const unsigned __int128 scaled = static_cast<unsigned __int128>(bytes) * 1000;
  return saturate((scaled + bandwidth_bytes_per_s - 1) / bandwidth_bytes_per_s);
}

bool needs_exact_query(const PendingTotals& estimate, uint64_t threshold_bytes,
                       bool postcopy_requested) {
  // R13: the estimate may be within the threshold, so check it exactly.
  if (estimate.total_bytes() <= threshold_bytes) return true;
  // R13 with the Q19 reading: nothing left that can move while the vCPUs
  // run, only stop-only data. Without a sync here, stale estimates would
  // never be refreshed (§3.5). precopy == 0 alone is not enough: with
  // postcopy on, RAM's backlog is postcopy_bytes and would force a sync on
  // every iteration.
  if (estimate.movable_while_running() == 0) return true;
  // The postcopy start decision (R17) is also taken on exact data only.
  return postcopy_requested && estimate.stopped_before_postcopy() <= threshold_bytes;
}

uint64_t PrecopyState::acks_outstanding() const {
  return acks_requested > acks_received ? acks_requested - acks_received : 0;
}

PrecopyState initial_precopy_state(const PrecopyConfig& config) {
  PrecopyState s;
  s.config = config;
  // R16: a bandwidth the user gave applies from the start; a measured one
  // only once its first window has ended, so the threshold is 0 until then.
  s.expected_bandwidth_bytes_per_s = config.switchover_bandwidth_bytes_per_s.value_or(0);
  s.threshold_bytes =
      switchover_threshold_bytes(s.expected_bandwidth_bytes_per_s, config.downtime_limit_ms);
  return s;
}

PrecopyDecision next_precopy_decision(const PrecopyState& state,
                                      const PrecopyObservation& observation) {
  PrecopyState s = state;
  const PendingQuery expected = s.phase == PrecopyPhase::estimate ? PendingQuery::estimate
                                : s.phase == PrecopyPhase::exact  ? PendingQuery::exact
                                                                  : PendingQuery::final;
  if (s.phase == PrecopyPhase::done) {
    return failed("policy misuse: an observation after the loop ended", s);
  }
  if (observation.query != expected) {
    return failed("policy misuse: expected the " + std::string(to_string(expected)) +
                      " query in phase " + std::string(to_string(s.phase)) + ", got " +
                      std::string(to_string(observation.query)),
                  s);
  }

  // R11: the core's own sum; R23: every query updates the statistic.
  s.last = sum_pending(observation.reports);
  if (observation.query != PendingQuery::estimate) ++s.exact_queries;  // R12

  // R16: the user's rate wins over the measured one.
  if (observation.measured_bandwidth_bytes_per_s && !s.config.switchover_bandwidth_bytes_per_s) {
    s.expected_bandwidth_bytes_per_s = *observation.measured_bandwidth_bytes_per_s;
  }
  s.threshold_bytes =
      switchover_threshold_bytes(s.expected_bandwidth_bytes_per_s, s.config.downtime_limit_ms);

  // R26: requests are counted before ACKs are applied: a device's request is
  // counted before it can emit the marker the destination ACKs, so ACKs
  // received by now answer requests counted by now.
  if (!s.config.switchover_ack && observation.acks_received != 0) {
    return failed(
        "received " + n(observation.acks_received) + " SWITCHOVER_ACKs but switchover-ack is off",
        s);
  }
  if (s.config.switchover_ack) {
    s.acks_requested = saturating_add(s.acks_requested, s.last.switchover_ack_requests);
    s.acks_received = saturating_add(s.acks_received, observation.acks_received);
    if (s.acks_received > s.acks_requested) {  // R27
      return failed("switchover ack pending num underflowed (" + n(s.acks_received) +
                        " ACKs received for " + n(s.acks_requested) + " requests)",
                    s);
    }
  }

  switch (s.phase) {
    case PrecopyPhase::estimate:
      return decide_after_estimate(s, observation);
    case PrecopyPhase::exact:
      return decide_after_exact(s, observation);
    case PrecopyPhase::final_query:
      return decide_after_final(s);
    case PrecopyPhase::done:
      break;
  }
  return failed("policy misuse: unknown phase", s);
}

std::string_view to_string(PrecopyAction action) {
  switch (action) {
    case PrecopyAction::query_exact:
      return "query_exact";
    case PrecopyAction::iterate:
      return "iterate";
    case PrecopyAction::wait_for_ack:
      return "wait_for_ack";
    case PrecopyAction::switchover:
      return "switchover";
    case PrecopyAction::complete:
      return "complete";
    case PrecopyAction::fail:
      return "fail";
  }
  return "unknown";
}

std::string_view to_string(PrecopyPhase phase) {
  switch (phase) {
    case PrecopyPhase::estimate:
      return "estimate";
    case PrecopyPhase::exact:
      return "exact";
    case PrecopyPhase::final_query:
      return "final_query";
    case PrecopyPhase::done:
      return "done";
  }
  return "unknown";
}

std::string_view to_string(PendingQuery query) {
  switch (query) {
    case PendingQuery::estimate:
      return "estimate";
    case PendingQuery::exact:
      return "exact";
    case PendingQuery::final:
      return "final";
  }
  return "unknown";
}

}  // namespace godwit::migration
