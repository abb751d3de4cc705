// MigrationSource (engine.h): the migration thread, the return-path reader
// and the recovery that keeps the source whole when anything fails before GO.
#include <algorithm>
#include <cerrno>
#include <limits>
#include <set>

#include "base/log.h"
#include "migration/engine.h"
#include "migration/multifd.h"
#include "migration/precopy_policy.h"
#include "migration/ram_migratable.h"

namespace godwit::migration {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t us_since(Clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}
uint64_t ms_since(Clock::time_point t) { return us_since(t) / 1000; }

// When nothing has moved yet there is no measured bandwidth and the
// threshold would stay 0 (R16) while only stop-copy data is left: assume a
// modest rate rather than wait forever.
constexpr uint64_t kFallbackBandwidth = 100'000'000;
// A cancelled migration blocked in a write (stalled peer) is woken by shutting
// the connection down after this long.
constexpr auto kCancelGrace = std::chrono::milliseconds(2000);
// Auto-converge: throttle steps and cap.
constexpr uint32_t kThrottleInitial = 20;
constexpr uint32_t kThrottleStep = 10;
constexpr uint32_t kThrottleMax = 99;
// Multifd: page data planned per precopy iteration (like one RAM section).
constexpr uint64_t kRamBytesPerIteration = 4 << 20;

}  // namespace

/// One migration: everything the migration thread and the return-path
/// reader share. Owned jointly by the MigrationSource and the thread.
class MigrationSource::Run {
 public:
  Run(MigrationSource& owner, SendOptions options)
      : owner_(owner), vm_(owner.vm_), tuning_(owner.tuning_), options_(std::move(options)) {}

  /// The migration thread's body.
  void main();

  std::atomic<bool> cancel_requested{false};
  /// Set (under the owner's mutex) right before GO: cancel is refused after it.
  bool committed = false;
  Clock::time_point cancel_time;

 private:
  // --- state (R4: only this thread writes it) ---
  [[nodiscard]] Result<void> transition(MigrationState from, MigrationState to);
  [[nodiscard]] MigrationState state() const;
  template <typename F>
  void update(F&& f) {
    std::lock_guard lock(owner_.mutex_);
    f(owner_.status_);
  }

  // --- phases ---
  [[nodiscard]] Result<void> migrate();
  [[nodiscard]] Result<void> setup();
  [[nodiscard]] Result<void> precopy();
  [[nodiscard]] Result<void> complete();
  void finish(const Result<void>& result);

  // --- helpers ---
  /// Fails when a cancel was asked for or the return path reported a failure.
  [[nodiscard]] Result<void> check();
  [[nodiscard]] Result<std::vector<PendingData>> query(PendingQuery q);
  /// One save_iterate() of every piece that has precopy data; returns bytes sent.
  [[nodiscard]] Result<uint64_t> iterate_once(const std::vector<PendingData>& reports);
  [[nodiscard]] Result<void> send_section(Migratable& m, const SectionWriter& payload);
  /// Multifd: opens the channels (after SETUP_ACCEPT).
  [[nodiscard]] Result<void> open_multifd(const Address& address);
  /// Multifd: plans RAM pages into packets for the channels, up to about
  /// `budget` bytes of page data or until nothing is pending; returns the
  /// bytes planned (page data plus 8 per zero page) and sets `done`.
  [[nodiscard]] Result<uint64_t> send_ram_packets(uint64_t budget, bool& done);
  /// Multifd: ends the round (SYNC on every channel, FLUSH here). Runs
  /// before every exact or final query and after the final drain.
  [[nodiscard]] Result<void> flush_round();
  /// Before the vCPUs stop: waits until the destination has applied
  /// everything sent so far (FLUSH on multifd, then a PING whose PONG comes
  /// back only after it), so the downtime covers the final delta alone and
  /// not also the data still in socket buffers and channel queues.
  [[nodiscard]] Result<void> drain_in_flight();
  /// Bytes sent on the main channel and the multifd channels.
  [[nodiscard]] uint64_t total_bytes() const;
  [[nodiscard]] Result<void> send(wire::FrameType type, std::span<const uint8_t> head,
                                  std::span<const uint8_t> body = {});
  /// A send failed: prefer the destination's own reason if it arrives soon.
  [[nodiscard]] Error explain_send_failure(Error error);
  /// Waits (cancellable, up to reply_timeout) until the connection has data.
  [[nodiscard]] Result<void> await_readable(const char* what);
  /// Sleeps so that the average rate stays within max_bandwidth.
  [[nodiscard]] Result<void> rate_limit();
  /// Waits for a LOADED/RESUMED-like event recorded by the return path.
  [[nodiscard]] Result<uint64_t> wait_for(std::optional<uint64_t> Run::*slot, const char* what);
  void update_ram_stats();
  void return_path_main();
  void record_rp_failure(std::string message);

  MigrationSource& owner_;
  SourceVm& vm_;
  const EngineTuning tuning_;
  const SendOptions options_;

  Connection connection_;
  std::optional<wire::FrameWriter> writer_;
  /// False while a frame is half written or after a failed send: no further
  /// frame (not even CANCEL) may follow on this stream.
  bool writer_clean_ = true;
  std::thread rp_thread_;

  // Return path -> migration thread (R4: the reader only records).
  std::mutex rp_mutex_;
  std::condition_variable rp_event_;
  std::optional<std::string> rp_failure_;  ///< ERROR text or read failure
  std::optional<uint64_t> loaded_us_;
  std::optional<uint64_t> resumed_us_;
  uint64_t acks_received_ = 0;
  std::atomic<bool> rp_stop_{false};
  std::atomic<uint32_t> pings_sent_{0};
  uint32_t last_pong_ = 0;  ///< highest PONG value; under rp_mutex_
  /// When the frame being written started (steady clock ns), 0 when none:
  /// the return-path reader watches it for a destination that stopped reading.
  std::atomic<int64_t> send_started_ns_{0};

  std::array<uint8_t, 16> session_{};
  std::unique_ptr<MultifdSender> multifd_;
  /// multifd_ for the return-path reader (stall watch, shutdown); set once.
  std::atomic<MultifdSender*> multifd_view_{nullptr};
  RamMigratable* multifd_ram_ = nullptr;  ///< the RAM whose pages go on the channels

  std::vector<Migratable*> migratables_;
  /// Pieces that had precopy data at some point: they support save_iterate().
  std::set<Migratable*> iterative_;
  bool tracking_on_ = false;
  bool was_running_ = false;
  bool stopped_vm_ = false;
  uint32_t throttle_ = 0;
  Clock::time_point start_;
  Clock::time_point active_start_;
  Clock::time_point stop_time_;
  uint64_t bytes_at_active_ = 0;
};

// ---------------------------------------------------------------------------
// state

MigrationState MigrationSource::Run::state() const {
  std::lock_guard lock(owner_.mutex_);
  return owner_.status_.state;
}

Result<void> MigrationSource::Run::transition(MigrationState from, MigrationState to) {
  {
    std::lock_guard lock(owner_.mutex_);
    if (owner_.status_.state != from) {
      return fail("illegal migration state change " + std::string(to_string(from)) + " -> " +
                  std::string(to_string(to)) + ": the state is " +
                  std::string(to_string(owner_.status_.state)));
    }
    owner_.status_.state = to;
    if (to == MigrationState::active) owner_.status_.setup_time_ms = ms_since(start_);
    if (is_terminal(to)) owner_.status_.total_time_ms = ms_since(start_);
  }
  owner_.changed_.notify_all();
  log::info("migration: " + std::string(to_string(from)) + " -> " + std::string(to_string(to)));
  if (tuning_.on_transition) tuning_.on_transition(from, to);
  return {};
}

// ---------------------------------------------------------------------------
// thread bodies

void MigrationSource::Run::main() {
  start_ = owner_.started_;
  Result<void> result = migrate();
  finish(result);
}

Result<void> MigrationSource::Run::migrate() {
  TRY_VOID(setup());
  TRY_VOID(transition(MigrationState::setup, MigrationState::active));
  TRY_VOID(precopy());
  return complete();
}

Result<void> MigrationSource::Run::setup() {
  const Address address = TRY(parse_address(options_.uri));
  connection_ = TRY(connect_to(address, tuning_.connect_timeout));
  TRY_VOID(check());
  wire::Hello hello;
  session_ = wire::new_session_id();
  hello.session_id = session_;
  hello.role = wire::ChannelRole::main;
  // The hello in two halves so that waiting for the peer's answer can be
  // cancelled and times out.
  TRY_VOID(wire::send_hello(connection_, hello));
  TRY_VOID(await_readable("the destination's hello"));
  TRY(wire::receive_hello(connection_, hello));
  writer_.emplace(connection_);
  log::info("migration: connected to " + address.text() + ", session " +
            wire::session_text(hello.session_id));

  wire::SetupMessage setup;
  setup.vm = vm_.describe();
  setup.features = tuning_.switchover_ack ? uint64_t{wire::kFeatureSwitchoverAck} : uint64_t{0};
  setup.switchover_ack_mode = tuning_.switchover_ack_mode;
  if (options_.channels > 0) {
    setup.features |= wire::kFeatureMultifd;
    setup.multifd_channels = options_.channels;
    setup.multifd_codec = options_.compression.codec;
  }
  const auto setup_bytes = wire::encode_setup(setup);
  TRY_VOID(send(wire::FrameType::setup, setup_bytes));

  // The answer is read here, before the return-path reader exists.
  TRY_VOID(await_readable("an answer to SETUP"));
  wire::FrameReader reader(connection_);
  const wire::Frame reply = TRY(reader.read());
  if (reply.type == static_cast<uint16_t>(wire::FrameType::error)) {
    const std::string text = TRY(wire::decode_text(reply));
    return fail("destination refused the migration: " + text);
  }
  if (reply.type != static_cast<uint16_t>(wire::FrameType::setup_accept)) {
    return fail("expected SETUP_ACCEPT from the destination, got " +
                wire::frame_type_name(reply.type));
  }
  const wire::SetupAccept accept = TRY(wire::decode_setup_accept(reply));
  // R34: the mode must be agreed explicitly; a destination answering with a
  // different one is a failure now, never an ACK underflow or hang later.
  if (accept.switchover_ack_mode != setup.switchover_ack_mode) {
    return fail("switchover-ack mode not agreed: source " +
                wire::to_string(setup.switchover_ack_mode) + ", destination " +
                wire::to_string(accept.switchover_ack_mode));
  }
  if ((accept.features & ~setup.features) != 0) {
    return fail("destination accepted features the source did not request");
  }
  if (tuning_.switchover_ack && (accept.features & wire::kFeatureSwitchoverAck) == 0) {
    return fail("the destination does not support switchover-ack, which this migration requires");
  }
  if (options_.channels > 0 && (accept.features & wire::kFeatureMultifd) == 0) {
    return fail("the destination does not support multifd channels");
  }

  rp_thread_ = std::thread([this] { return_path_main(); });

  was_running_ = vm_.running();
  TRY_VOID(with_context(vm_.start_dirty_tracking(options_.dirty_tracking), "dirty tracking"));
  tracking_on_ = true;
  migratables_ = vm_.migratables();
  if (migratables_.empty()) return fail("the VM has nothing to migrate");
  if (options_.channels > 0) TRY_VOID(open_multifd(address));
  active_start_ = Clock::now();
  bytes_at_active_ = total_bytes();
  return check();
}

Result<void> MigrationSource::Run::precopy() {
  PrecopyConfig config;
  config.downtime_limit_ms = options_.downtime_limit_ms;
  config.switchover_ack = tuning_.switchover_ack;
  PrecopyState policy = initial_precopy_state(config);

  PendingQuery next = PendingQuery::estimate;
  Clock::time_point window_start = Clock::now();
  uint64_t window_bytes = 0;
  std::optional<uint64_t> measured;
  Clock::time_point last_sync = Clock::now();
  uint64_t sent_since_sync = 0;
  uint64_t estimate_before_exact = 0;
  uint32_t heavy_dirty_syncs = 0;

  Clock::time_point last_ping = Clock::now();
  for (;;) {
    TRY_VOID(check());
    if (Clock::now() - last_ping >= tuning_.ping_interval) {
      TRY_VOID(send(wire::FrameType::ping, wire::encode_u32(++pings_sent_)));
      last_ping = Clock::now();
    }
    PrecopyObservation observation;
    observation.query = next;
    // Pages planned from here on belong to the round after this collect.
    if (next != PendingQuery::estimate) TRY_VOID(flush_round());
    observation.reports = TRY(query(next));
    if (measured) observation.measured_bandwidth_bytes_per_s = std::exchange(measured, {});
    {
      std::lock_guard lock(rp_mutex_);
      observation.acks_received = static_cast<uint32_t>(std::exchange(acks_received_, 0));
    }
    observation.vm_running = !stopped_vm_ && vm_.running();
    const PrecopyDecision decision = next_precopy_decision(policy, observation);
    policy = decision.state;
    log::debug("migration: " + std::string(to_string(decision.action)) + ": " + decision.reason);

    update([&](MigrationStatus& s) {
      s.remaining_bytes = policy.last.total_bytes();
      s.iterations = policy.exact_queries;
      s.transferred_bytes = total_bytes();
      if (auto ms = expected_downtime_ms(policy.last.total_bytes(),
                                         policy.expected_bandwidth_bytes_per_s)) {
        s.expected_downtime_ms = *ms;
      }
    });

    if (next == PendingQuery::exact) {
      // One dirty sync (R12): what it found is what the guest dirtied since
      // the previous one.
      const uint64_t found = policy.last.total_bytes() > estimate_before_exact
                                 ? policy.last.total_bytes() - estimate_before_exact
                                 : 0;
      const uint64_t period_us = std::max<uint64_t>(us_since(last_sync), 1);
      update(
          [&](MigrationStatus& s) { s.dirty_pages_per_s = found / 4096 * 1'000'000 / period_us; });
      // Auto-converge: the guest dirties more than half of what was sent in
      // the same period, twice in a row.
      heavy_dirty_syncs =
          (policy.exact_queries > 1 && found > sent_since_sync / 2) ? heavy_dirty_syncs + 1 : 0;
      if (options_.auto_converge && heavy_dirty_syncs >= 2 && throttle_ < kThrottleMax) {
        throttle_ = throttle_ == 0 ? uint32_t{kThrottleInitial}
                                   : std::min<uint32_t>(kThrottleMax, throttle_ + kThrottleStep);
        vm_.set_throttle(throttle_);
        heavy_dirty_syncs = 0;
        update([&](MigrationStatus& s) { s.throttle_percent = throttle_; });
        log::info("migration: auto-converge throttles the vCPUs to " + std::to_string(throttle_) +
                  "%");
      }
      last_sync = Clock::now();
      sent_since_sync = 0;
      // Tells the destination a dirty sync happened (its iteration count).
      TRY_VOID(send(wire::FrameType::round, wire::encode_u32(policy.exact_queries)));
    }

    switch (decision.action) {
      case PrecopyAction::query_exact:
        estimate_before_exact = policy.last.total_bytes();
        next = PendingQuery::exact;
        continue;
      case PrecopyAction::iterate:
      case PrecopyAction::wait_for_ack: {
        const uint64_t sent = TRY(iterate_once(observation.reports));
        window_bytes += sent;
        sent_since_sync += sent;
        const auto window = Clock::now() - window_start;
        // A window ends when it is long enough, or early when nothing moved
        // in this round (otherwise a short burst would never be measured).
        if (window_bytes > 0 && (window >= tuning_.bandwidth_window || sent == 0)) {
          const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(window).count();
          measured = static_cast<uint64_t>(static_cast<unsigned __int128>(window_bytes) *
                                           1'000'000'000 / static_cast<uint64_t>(ns));
          update([&](MigrationStatus& s) { s.throughput_bytes_per_s = *measured; });
          window_start = Clock::now();
          window_bytes = 0;
        }
        if (sent == 0) {
          if (policy.expected_bandwidth_bytes_per_s == 0 && !measured) {
            log::info("migration: nothing movable and no bandwidth measured yet: assuming " +
                      std::to_string(kFallbackBandwidth / 1'000'000) + " MB/s");
            measured = kFallbackBandwidth;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        update_ram_stats();
        next = PendingQuery::estimate;
        continue;
      }
      case PrecopyAction::switchover: {
        TRY_VOID(drain_in_flight());
        TRY_VOID(transition(MigrationState::active, MigrationState::device));
        stop_time_ = Clock::now();
        if (vm_.running()) {
          TRY_VOID(with_context(vm_.stop(), "Failed to stop the VM"));
          stopped_vm_ = true;
        }
        next = PendingQuery::final;
        continue;
      }
      case PrecopyAction::complete:
        update([&](MigrationStatus& s) { s.downtime.final_sync_us = us_since(stop_time_); });
        return {};
      case PrecopyAction::fail:
        return fail(decision.reason);
    }
  }
}

Result<void> MigrationSource::Run::complete() {
  for (Migratable* m : migratables_) {
    TRY_VOID(check());
    const Clock::time_point t = Clock::now();
    // A piece that took part in precopy drains its backlog in bounded
    // save_iterate() sections first (no collect: the final query was the
    // last, R21), so the final delta is never one unbounded frame.
    if (m == multifd_ram_ && iterative_.contains(m)) {
      for (bool done = false; !done;) {
        TRY_VOID(check());
        TRY(send_ram_packets(std::numeric_limits<uint64_t>::max(), done));
      }
      // Every page is on the destination before COMPLETE can be read.
      TRY_VOID(flush_round());
    } else if (iterative_.contains(m)) {
      for (bool done = false; !done;) {
        TRY_VOID(check());
        SectionWriter chunk;
        done = TRY(with_context(m->save_iterate(chunk), "final round of " + m->key().name()));
        if (chunk.size() > 0) TRY_VOID(send_section(*m, chunk));
      }
    }
    SectionWriter payload;
    TRY_VOID(with_context(m->save_complete(payload), "saving " + m->key().name()));
    TRY_VOID(send_section(*m, payload));
    const uint64_t us = us_since(t);
    update([&](MigrationStatus& s) {
      if (m->key().kind == RamMigratable::kKind) {
        s.downtime.last_ram_us += us;
      } else {
        s.downtime.device_state_us += us;
      }
    });
  }
  update_ram_stats();
  TRY_VOID(send(wire::FrameType::complete, {}));
  const uint64_t load_us = TRY(wait_for(&Run::loaded_us_, "LOADED"));
  update([&](MigrationStatus& s) { s.downtime.destination_load_us = load_us; });

  // The point of no return: once GO may have left, the guest may run on the
  // destination, so the source must never resume again.
  {
    std::lock_guard lock(owner_.mutex_);
    if (cancel_requested) return fail("migration cancelled before the destination was started");
    committed = true;
  }
  if (auto sent = send(wire::FrameType::go, {}); !sent) {
    return fail("sending GO failed (" + sent.error().message +
                "): the destination may not run the guest; the source stays paused");
  }
  const auto resumed = wait_for(&Run::resumed_us_, "RESUMED");
  if (!resumed) {
    return fail("the destination did not confirm the resume (" + resumed.error().message +
                "); the guest may be running there, so the source stays paused");
  }
  update([&](MigrationStatus& s) {
    s.downtime.resume_us = *resumed;
    s.downtime_ms = ms_since(stop_time_);
    s.transferred_bytes = total_bytes();
    s.remaining_bytes = 0;
  });
  return {};
}

void MigrationSource::Run::finish(const Result<void>& result) {
  const MigrationState at = state();
  std::string error = result ? std::string() : result.error().message;
  const bool cancelled = !result && cancel_requested.load();

  if (cancelled && cancel_allowed(at)) {
    // R8/R10: a cancel (also one racing the switchover) ends in cancelled.
    (void)transition(at, MigrationState::cancelling);
  }
  // Recovery (before GO): the destination never ran, the source continues.
  if (!result && !committed) {
    if (writer_ && writer_clean_ && connection_.valid() && !connection_.is_shut_down()) {
      const std::string reason = cancelled ? "cancelled by the user" : error;
      (void)send(wire::FrameType::cancel, wire::encode_text(reason));
    }
    if (multifd_) multifd_->shutdown();
    if (stopped_vm_ && was_running_) {
      if (auto r = vm_.resume(); !r) {
        error += "; resuming the source failed: " + r.error().message;
        log::error("migration: resuming the source failed: " + r.error().message);
      }
    }
  }
  if (throttle_ != 0) vm_.set_throttle(0);
  if (tracking_on_) vm_.stop_dirty_tracking();
  for (Migratable* m : migratables_) {
    if (auto r = m->cleanup(result.has_value()); !r) {
      log::warn("migration: cleanup of " + m->key().name() + ": " + r.error().message);
    }
  }
  rp_stop_ = true;
  connection_.shutdown();
  if (rp_thread_.joinable()) rp_thread_.join();
  uint64_t multifd_wire = 0;
  uint64_t multifd_raw = 0;
  if (multifd_) {
    // Joins the sender threads; the destination has read everything it
    // needed (LOADED came after its last FLUSH) or the migration failed.
    multifd_->shutdown();
    multifd_wire = multifd_->wire_bytes();
    multifd_raw = multifd_->raw_bytes();
    multifd_view_ = nullptr;
    multifd_.reset();
  }

  update([&](MigrationStatus& s) {
    if (writer_) s.transferred_bytes = writer_->bytes_sent() + multifd_wire;
    if (options_.channels > 0) {
      s.multifd_bytes = multifd_wire;
      s.uncompressed_bytes = multifd_raw;
    }
    if (!result) s.error = error.empty() ? "migration failed (no reason recorded)" : error;
  });
  const MigrationState now = state();
  if (result) {
    (void)transition(now, MigrationState::completed);
    log::info("migration: completed");
  } else if (cancelled && now == MigrationState::cancelling) {
    (void)transition(now, MigrationState::cancelled);
  } else {
    (void)transition(now, MigrationState::failed);
    log::error("migration failed: " + error);
  }
}

// ---------------------------------------------------------------------------
// helpers

Result<void> MigrationSource::Run::check() {
  if (cancel_requested) return fail("migration cancelled");
  {
    std::lock_guard lock(rp_mutex_);
    if (rp_failure_) return fail(*rp_failure_);
  }
  if (multifd_) {
    // The destination's ERROR, when it has one, says more (a corrupt packet
    // shows here only as the destination closing the channel).
    if (auto failed = multifd_->failure())
      return std::unexpected(explain_send_failure({*failed, 0}));
  }
  return {};
}

Result<std::vector<PendingData>> MigrationSource::Run::query(PendingQuery q) {
  std::vector<PendingData> reports;
  reports.reserve(migratables_.size());
  for (Migratable* m : migratables_) {
    reports.push_back(TRY(
        with_context(m->pending(q), std::string(to_string(q)) + " query of " + m->key().name())));
  }
  return reports;
}

Result<uint64_t> MigrationSource::Run::iterate_once(const std::vector<PendingData>& reports) {
  uint64_t sent = 0;
  for (size_t i = 0; i < migratables_.size(); ++i) {
    if (reports[i].precopy_bytes == 0) continue;
    Migratable& m = *migratables_[i];
    iterative_.insert(&m);
    if (&m == multifd_ram_) {
      bool done = false;
      sent += TRY(send_ram_packets(kRamBytesPerIteration, done));
      TRY_VOID(rate_limit());
      continue;
    }
    SectionWriter payload;
    TRY(with_context(m.save_iterate(payload), "precopy round of " + m.key().name()));
    if (payload.size() == 0) continue;
    const uint64_t before = writer_->bytes_sent();
    TRY_VOID(send_section(m, payload));
    sent += writer_->bytes_sent() - before;
    TRY_VOID(rate_limit());
  }
  update([&](MigrationStatus& s) {
    s.transferred_bytes = total_bytes();
    if (multifd_) {
      s.multifd_bytes = multifd_->wire_bytes();
      s.uncompressed_bytes = multifd_->raw_bytes();
    }
  });
  return sent;
}

Result<void> MigrationSource::Run::open_multifd(const Address& address) {
  for (Migratable* m : migratables_) {
    if (auto* ram = dynamic_cast<RamMigratable*>(m)) multifd_ram_ = ram;
  }
  if (multifd_ram_ == nullptr) return fail("multifd: the VM has no RAM to send on the channels");
  MultifdSender::Options options;
  options.connect_timeout = tuning_.connect_timeout;
  options.reply_timeout = tuning_.reply_timeout;
  // Waiting for a channel's hello also ends when the destination has
  // reported a failure on the main channel (its reason is the one to give).
  const auto stop = [this] {
    if (cancel_requested) return true;
    std::lock_guard lock(rp_mutex_);
    return rp_failure_.has_value();
  };
  auto opened = MultifdSender::open(address, session_, {options_.channels, options_.compression},
                                    *multifd_ram_, options, stop);
  if (!opened) return std::unexpected(explain_send_failure(opened.error()));
  multifd_ = std::move(*opened);
  multifd_view_ = multifd_.get();
  return {};
}

Result<uint64_t> MigrationSource::Run::send_ram_packets(uint64_t budget, bool& done) {
  uint64_t planned = 0;
  done = false;
  while (!done && planned < budget) {
    TRY_VOID(check());
    PagePlan plan;
    done = TRY(with_context(multifd_ram_->plan_pages(tuning_.multifd_pages_per_packet, plan),
                            "precopy round of " + multifd_ram_->key().name()));
    if (plan.pages() == 0) continue;
    planned += plan.data.size() * kPageSize + plan.zero.size() * 8;
    if (auto queued = multifd_->send(std::move(plan)); !queued) {
      TRY_VOID(check());  // the cause (a channel, the return path, a cancel) first
      return std::unexpected(queued.error());
    }
  }
  return planned;
}

Result<void> MigrationSource::Run::drain_in_flight() {
  const Clock::time_point t = Clock::now();
  const uint64_t sent = total_bytes();
  TRY_VOID(flush_round());
  const uint32_t value = ++pings_sent_;
  TRY_VOID(send(wire::FrameType::ping, wire::encode_u32(value)));
  const auto deadline = Clock::now() + tuning_.reply_timeout;
  for (;;) {
    {
      std::unique_lock lock(rp_mutex_);
      rp_event_.wait_for(lock, std::chrono::milliseconds(20),
                         [&] { return last_pong_ >= value || rp_failure_.has_value(); });
      if (last_pong_ >= value) break;
    }
    TRY_VOID(check());
    if (Clock::now() >= deadline) {
      return fail("the destination did not confirm the data in flight within " +
                  std::to_string(tuning_.reply_timeout.count()) + " ms");
    }
  }
  log::info("migration: the destination applied everything sent (" + std::to_string(sent) +
            " bytes) " + std::to_string(us_since(t) / 1000) + " ms before the vCPUs stop");
  return {};
}

Result<void> MigrationSource::Run::flush_round() {
  if (!multifd_) return {};
  const uint32_t round = TRY(multifd_->sync());
  return send(wire::FrameType::flush, wire::encode_u32(round));
}

uint64_t MigrationSource::Run::total_bytes() const {
  return writer_->bytes_sent() + (multifd_ ? multifd_->wire_bytes() : 0);
}

Result<void> MigrationSource::Run::send_section(Migratable& m, const SectionWriter& payload) {
  TRY_VOID(payload.status());
  const auto head = wire::encode_section_header({m.key(), m.version()});
  return send(wire::FrameType::section, head, payload.data());
}

Result<void> MigrationSource::Run::send(wire::FrameType type, std::span<const uint8_t> head,
                                        std::span<const uint8_t> body) {
  if (!writer_clean_) return fail("the migration stream is broken by an earlier failed write");
  writer_clean_ = false;
  send_started_ns_ = Clock::now().time_since_epoch().count();
  auto r = writer_->send(type, head, body);
  send_started_ns_ = 0;
  if (!r) return std::unexpected(explain_send_failure(r.error()));
  writer_clean_ = true;
  return {};
}

Error MigrationSource::Run::explain_send_failure(Error error) {
  if (cancel_requested) return Error{"migration cancelled", ECANCELED};
  // The destination usually says why it stopped reading before it closes.
  std::unique_lock lock(rp_mutex_);
  rp_event_.wait_for(lock, std::chrono::milliseconds(1000),
                     [&] { return rp_failure_.has_value(); });
  // A return-path failure shut the connection down itself, or is the cause.
  if (rp_failure_) return Error{*rp_failure_, 0};
  return error;
}

Result<void> MigrationSource::Run::await_readable(const char* what) {
  const auto deadline = Clock::now() + tuning_.reply_timeout;
  for (;;) {
    TRY_VOID(check());
    if (TRY(connection_.wait_readable(std::chrono::milliseconds(50)))) return {};
    if (Clock::now() >= deadline) {
      return fail(std::string("no ") + what + " within " +
                  std::to_string(tuning_.reply_timeout.count()) + " ms");
    }
  }
}

Result<void> MigrationSource::Run::rate_limit() {
  if (!options_.max_bandwidth_bytes_per_s) return {};
  const uint64_t limit = *options_.max_bandwidth_bytes_per_s;
  const uint64_t bytes = total_bytes() - bytes_at_active_;
  const auto due = active_start_ + std::chrono::microseconds(static_cast<uint64_t>(
                                       static_cast<unsigned __int128>(bytes) * 1'000'000 / limit));
  while (Clock::now() < due) {
    TRY_VOID(check());
    std::this_thread::sleep_for(
        std::min<Clock::duration>(due - Clock::now(), std::chrono::milliseconds(50)));
  }
  return {};
}

Result<uint64_t> MigrationSource::Run::wait_for(std::optional<uint64_t> Run::*slot,
                                                const char* what) {
  const auto deadline = Clock::now() + tuning_.reply_timeout;
  std::unique_lock lock(rp_mutex_);
  for (;;) {
    // The answer first: the destination may close right after sending it.
    if ((this->*slot).has_value()) return *(this->*slot);
    if (rp_failure_) return fail(*rp_failure_);
    if (cancel_requested) return fail("migration cancelled");
    if (Clock::now() >= deadline) {
      return fail(std::string("no ") + what + " from the destination within " +
                  std::to_string(tuning_.reply_timeout.count()) + " ms");
    }
    rp_event_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void MigrationSource::Run::update_ram_stats() {
  for (Migratable* m : migratables_) {
    if (auto* ram = dynamic_cast<RamMigratable*>(m)) {
      const RamSaveStats& st = ram->stats();
      update([&](MigrationStatus& s) {
        s.normal_pages = st.data_pages;
        s.zero_pages = st.zero_pages;
      });
    }
  }
}

void MigrationSource::Run::record_rp_failure(std::string message) {
  {
    std::lock_guard lock(rp_mutex_);
    if (!rp_failure_) rp_failure_ = std::move(message);
  }
  rp_event_.notify_all();
  // The stream is dead: a peer that stopped reading would leave the
  // migration thread blocked in a write forever (or waiting for room on a
  // multifd channel).
  connection_.shutdown();
  if (MultifdSender* multifd = multifd_view_) multifd->shutdown();
}

void MigrationSource::Run::return_path_main() {
  wire::FrameReader reader(connection_);
  for (;;) {
    // Poll so that a cancelled migration stuck in a write can be unblocked.
    auto readable = connection_.wait_readable(std::chrono::milliseconds(100));
    if (rp_stop_) return;
    MultifdSender* multifd = multifd_view_;
    if (cancel_requested && Clock::now() - cancel_time > kCancelGrace) {
      connection_.shutdown();
      if (multifd != nullptr) multifd->shutdown();
      return;
    }
    std::optional<Clock::time_point> oldest;
    if (const int64_t started = send_started_ns_; started != 0) {
      oldest = Clock::time_point(Clock::duration(started));
    }
    if (multifd != nullptr) {
      if (auto t = multifd->oldest_write(); t && (!oldest || *t < *oldest)) oldest = t;
    }
    if (oldest) {
      const auto blocked = Clock::now() - *oldest;
      if (blocked > tuning_.send_stall_timeout) {
        record_rp_failure(
            "the destination stopped reading: one frame has been blocked for " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(blocked).count()) +
            " ms");
        return;
      }
    }
    if (!readable) {
      record_rp_failure("return path: " + readable.error().message);
      return;
    }
    if (!*readable) continue;
    auto frame = reader.read();
    if (rp_stop_) return;
    if (!frame) {
      record_rp_failure("return path: " + frame.error().message);
      return;
    }
    // R57: every message is checked before it is acted on.
    if (auto valid = wire::validate_return_path_frame(*frame); !valid) {
      record_rp_failure("return path: " + valid.error().message);
      return;
    }
    const auto type = static_cast<wire::FrameType>(frame->type);
    std::unique_lock lock(rp_mutex_);
    switch (type) {
      case wire::FrameType::pong: {
        // Liveness in precopy (postcopy will wait for a specific value, R3).
        // A PONG for a PING never sent is a protocol error.
        const uint32_t value = wire::decode_u32(*frame).value_or(0);
        if (value == 0 || value > pings_sent_) {
          lock.unlock();
          record_rp_failure("return path: PONG " + std::to_string(value) + " answers no PING sent");
          return;
        }
        last_pong_ = std::max(last_pong_, value);
        break;
      }
      case wire::FrameType::switchover_ack:
        ++acks_received_;
        break;
      case wire::FrameType::loaded:
        loaded_us_ = wire::decode_u64(*frame).value_or(0);
        break;
      case wire::FrameType::resumed:
        resumed_us_ = wire::decode_u64(*frame).value_or(0);
        break;
      case wire::FrameType::error: {
        const std::string text = wire::decode_text(*frame).value_or("(unreadable text)");
        lock.unlock();
        record_rp_failure("destination failed: " + text);
        return;
      }
      default:
        lock.unlock();
        record_rp_failure("return path: unexpected " + wire::frame_type_name(frame->type));
        return;
    }
    lock.unlock();
    rp_event_.notify_all();
  }
}

// ---------------------------------------------------------------------------
// MigrationSource

MigrationSource::MigrationSource(SourceVm& vm, EngineTuning tuning)
    : vm_(vm), tuning_(std::move(tuning)) {}

MigrationSource::~MigrationSource() {
  (void)cancel();
  if (thread_.joinable()) thread_.join();
}

Result<void> MigrationSource::start(const SendOptions& options) {
  TRY_VOID(validate(options));
  TRY(parse_address(options.uri));
  {
    std::lock_guard lock(mutex_);
    if (status_.state != MigrationState::none && !is_terminal(status_.state)) {
      return fail("a migration is already " + std::string(to_string(status_.state)), EBUSY);
    }
    // The guest runs on the destination now; what is left here is stale.
    if (status_.state == MigrationState::completed) {
      return fail("this VM has already been migrated to " + status_.uri, EBUSY);
    }
  }
  // The previous run has reached a terminal state; its thread is finishing.
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  status_ = MigrationStatus{};
  status_.role = MigrationRole::source;
  status_.uri = options.uri;
  status_.state = MigrationState::setup;  // S1: the command itself enters setup
  started_ = Clock::now();
  status_.dirty_tracking = options.dirty_tracking;
  status_.downtime_limit_ms = options.downtime_limit_ms;
  status_.channels = options.channels;
  status_.compression = options.compression;
  run_ = std::make_shared<Run>(*this, options);
  thread_ = std::thread([run = run_] { run->main(); });
  return {};
}

MigrationStatus MigrationSource::status() const {
  std::lock_guard lock(mutex_);
  MigrationStatus s = status_;
  if (s.state != MigrationState::none && !is_terminal(s.state))
    s.total_time_ms = ms_since(started_);
  return s;
}

Result<void> MigrationSource::cancel() {
  std::lock_guard lock(mutex_);
  if (!run_ || status_.state == MigrationState::none || is_terminal(status_.state)) {
    return fail("no migration in progress", EALREADY);
  }
  if (!cancel_allowed(status_.state)) {  // R8
    return fail("cannot cancel a migration in state " + std::string(to_string(status_.state)),
                EBUSY);
  }
  if (run_->committed) {
    return fail("too late to cancel: the destination has been told to run the guest", EBUSY);
  }
  if (!run_->cancel_requested) {
    run_->cancel_time = Clock::now();
    run_->cancel_requested = true;
  }
  return {};
}

MigrationStatus MigrationSource::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(
      lock, [&] { return status_.state == MigrationState::none || is_terminal(status_.state); });
  return status_;
}

}  // namespace godwit::migration
