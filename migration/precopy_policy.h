// PrecopyPolicy: the decisions of the precopy iteration loop, as a pure
// function of what the engine observed (migration-requirements.md §3.3,
// R11-R17, R19-R24, R26-R27, R29, R31). No I/O, no threads, no clock: the
// engine queries the devices, measures the bandwidth, counts the ACKs from
// the return path, feeds one observation per query to
// next_precopy_decision(), and does what the decision says.
//
//   estimate query ─▶ trigger? (R13: total <= threshold, or only stop-copy
//        │            data left, or the postcopy trigger of R17)
//        │              └─yes─▶ query_exact ─▶ exact query ─▶ gate (R24, R26, R31)
//        │                                                     ├─ fits, open ─▶ switchover
//        │                                                     ├─ fits, shut ─▶ wait_for_ack
//        └─no──────────────────────────────────────────────────┴─ else ───────▶ iterate
//   iterate / wait_for_ack: the engine runs save_iterate(), then the next
//   estimate query.
//   switchover: the engine stops the vCPUs, then runs exactly one final
//   query (R19) ─▶ complete | fail (R29); nothing is accepted after that.
//
// Every decision carries the next state, a reason for the log, and the
// `stalled` flag for the engine's auto-converge / max-iterations hook.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "migration/migratable.h"

namespace godwit::migration {

/// Pending bytes of all devices, summed by the core (R11). Sums saturate at
/// UINT64_MAX: a device reporting garbage can make the total huge, never small.
struct PendingTotals {
  uint64_t precopy_bytes = 0;
  uint64_t stopcopy_bytes = 0;
  uint64_t postcopy_bytes = 0;
  uint64_t switchover_ack_requests = 0;  ///< new requests collected by this query

  /// precopy + stopcopy + postcopy; the only total the policy uses (R11).
  [[nodiscard]] uint64_t total_bytes() const;
  /// What can still move while the vCPUs run: precopy + postcopy (R13, Q19).
  [[nodiscard]] uint64_t movable_while_running() const;
  /// What a postcopy switchover must move with the vCPUs stopped (R17).
  [[nodiscard]] uint64_t stopped_before_postcopy() const;

  friend bool operator==(const PendingTotals&, const PendingTotals&) = default;
};

/// Sums the per-device reports (R11).
[[nodiscard]] PendingTotals sum_pending(std::span<const PendingData> reports);

/// threshold = expected bandwidth x downtime limit (R16), in bytes;
/// saturates; 0 when the bandwidth is 0.
[[nodiscard]] uint64_t switchover_threshold_bytes(uint64_t expected_bandwidth_bytes_per_s,
                                                  uint32_t downtime_limit_ms);

/// Time to move `bytes` at `bandwidth`; nullopt when the bandwidth is 0.
[[nodiscard]] std::optional<uint64_t> expected_downtime_ms(uint64_t bytes,
                                                           uint64_t bandwidth_bytes_per_s);

/// R13 (with the Q19 reading) plus the postcopy trigger: whether an estimate
/// calls for an exact query in this iteration.
[[nodiscard]] bool needs_exact_query(const PendingTotals& estimate, uint64_t threshold_bytes,
                                     bool postcopy_requested);

/// Settings fixed for one migration.
struct PrecopyConfig {
  uint32_t downtime_limit_ms = 300;
  /// The user's avail-switchover-bandwidth; overrides the measured rate (R16).
  std::optional<uint64_t> switchover_bandwidth_bytes_per_s;
  /// Switchover waits for the destination's ACKs (R26).
  bool switchover_ack = false;
  /// Report `stalled` after this many iterations without a new lowest total
  /// (0: never).
  uint32_t stall_after_iterations = 0;
  /// Report `stalled` once this many iterations have run (0: never).
  uint32_t max_iterations = 0;
};

/// Which observation the policy expects next.
enum class PrecopyPhase {
  estimate,     ///< start of an iteration: an estimate query
  exact,        ///< the exact query this iteration asked for
  final_query,  ///< vCPUs stopped: the one final query (R19)
  done,         ///< decided complete or fail; nothing more
};

/// How the switchover will go on once the vCPUs are stopped.
enum class SwitchoverKind {
  precopy,   ///< stop-and-copy everything, destination runs after
  postcopy,  ///< stop-copy precopy+stopcopy data, then postcopy (R17)
};

/// Where the loop is. A plain value: copy it, compare it, print it.
struct PrecopyState {
  PrecopyConfig config;
  PrecopyPhase phase = PrecopyPhase::estimate;
  SwitchoverKind switchover_kind = SwitchoverKind::precopy;
  uint64_t expected_bandwidth_bytes_per_s = 0;  ///< 0 until the first window (R16)
  uint64_t threshold_bytes = 0;                 ///< R16
  uint64_t acks_requested = 0;                  ///< requests collected by all queries (R26)
  uint64_t acks_received = 0;                   ///< ACKs from the return path (R26)
  uint32_t iterations = 0;                      ///< finished iterate / wait_for_ack rounds
  uint32_t exact_queries = 0;                   ///< dirty syncs, the final one included (R12)
  uint32_t iterations_without_progress = 0;
  std::optional<uint64_t> lowest_total;  ///< lowest total an iteration ended with
  PendingTotals last;                    ///< latest query, the final one included (R23)

  /// ACKs still outstanding (never negative: underflow fails first, R27).
  [[nodiscard]] uint64_t acks_outstanding() const;
};

/// The state at the start of a migration (after setup).
[[nodiscard]] PrecopyState initial_precopy_state(const PrecopyConfig& config);

/// What the engine saw since the last decision.
struct PrecopyObservation {
  PendingQuery query = PendingQuery::estimate;
  std::vector<PendingData> reports;  ///< one per Migratable, this query
  /// Rate over the measurement window that just ended; nullopt when no
  /// window ended since the last observation (keeps the previous rate).
  std::optional<uint64_t> measured_bandwidth_bytes_per_s;
  uint32_t acks_received = 0;       ///< SWITCHOVER_ACKs since the last observation
  bool vm_running = true;           ///< false once management paused the guest (R31)
  bool postcopy_requested = false;  ///< the user asked to switch to postcopy (R17)
};

/// What the engine does next.
enum class PrecopyAction {
  query_exact,   ///< run an exact query now, then observe it (R12, R13)
  iterate,       ///< save_iterate() round, then the next estimate query
  wait_for_ack,  ///< as iterate; the pending data fits, only ACKs are missing (R24)
  switchover,    ///< stop the vCPUs, then run the final query (R19)
  complete,      ///< write every device's final state (switchover_kind says how)
  fail,          ///< fail the migration with `reason`; the source resumes
};

/// One decision: the action, why, and the state to pass to the next call.
struct PrecopyDecision {
  PrecopyAction action = PrecopyAction::fail;
  std::string reason;
  PrecopyState state;
  /// The loop is not converging (config stall / max iterations): the
  /// engine's hook may throttle vCPUs (auto-converge) or give up. The policy
  /// itself never switches over because of it.
  bool stalled = false;
};

/// The step function. Pure: same inputs, same decision.
[[nodiscard]] PrecopyDecision next_precopy_decision(const PrecopyState& state,
                                                    const PrecopyObservation& observation);

[[nodiscard]] std::string_view to_string(PrecopyAction action);
[[nodiscard]] std::string_view to_string(PrecopyPhase phase);
[[nodiscard]] std::string_view to_string(PendingQuery query);

}  // namespace godwit::migration
