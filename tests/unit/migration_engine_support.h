// Harness of the migration engine tests (migration_engine_test.cpp,
// migration_engine_faults_test.cpp): a destination on its own thread, the
// R4 transition trace, the checks every outcome makes, a byte-level proxy
// for stream faults and a raw destination speaking frames by hand. The fake
// VMs themselves are in tests/migration_fake_vm.h.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "migration/engine.h"
#include "migration/ram_migratable.h"
#include "migration_fake_vm.h"

namespace godwit::migration::engine_test {

using ::testing::HasSubstr;
using namespace fake;  // NOLINT(google-build-using-namespace): the fakes are the tests' vocabulary

// --------------------------------------------------------------------------
// harness

/// Legal source transitions (R4) for precopy.
inline bool legal(MigrationState from, MigrationState to) {
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

inline SendOptions options_to(const std::string& uri) {
  SendOptions o;
  o.uri = uri;
  o.downtime_limit_ms = 300;
  return o;
}

/// Waits until `engine` is in `active` (the migration thread got past setup).
inline void wait_until_active(const MigrationSource& engine) {
  while (engine.status().state != MigrationState::active) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// The source guest still runs (makes passes) and its memory is intact.
inline void expect_source_alive_and_intact(FakeSource& source) {
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

inline void expect_same_memory(GuestMemory& a, GuestMemory& b) {
  ASSERT_EQ(a.total_size(), b.total_size());
  for (const RegionSpec& r : a.layout()) {
    auto x = a.host_span(r.gpa, r.size);
    auto y = b.host_span(r.gpa, r.size);
    ASSERT_TRUE(x && y);
    ASSERT_EQ(std::memcmp(x->data(), y->data(), r.size), 0) << "region at " << r.gpa << " differs";
  }
}

/// A completed migration, checked in full.
inline void expect_completed(FakeSource& source, FakeDestination& dest,
                             const MigrationStatus& status) {
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
inline void expect_source_survived(FakeSource& source, FakeDestination& dest,
                                   const MigrationStatus& status, MigrationState state) {
  EXPECT_EQ(status.state, state) << status.error;
  EXPECT_FALSE(status.error.empty()) << "R56: a failure without a reason";
  EXPECT_FALSE(dest.started) << "the destination ran a half-loaded guest";
  EXPECT_EQ(source.tracking_stops, source.tracking_starts);
  expect_source_alive_and_intact(source);
}

/// A migration to `uri` that must fail on both sides: each side's error
/// names `what`, the source survived, the destination never ran the guest.
inline MigrationStatus expect_failure_on_both_sides(FakeSource& source, FakeDestination& dest,
                                                    Incoming& incoming, MigrationSource& engine,
                                                    const std::string& uri,
                                                    const std::string& what) {
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
// a byte-level proxy for stream faults

/// Forwards every connection source -> destination and back (the main
/// channel is connection 0, multifd channel i is connection i + 1); can flip
/// one byte of connection `victim`'s source stream at `flip_at` or cut both
/// directions of that connection after `cut_after` bytes.
class Proxy {
 public:
  Proxy(std::string target, uint64_t flip_at, uint64_t cut_after, size_t victim = 0)
      : target_(std::move(target)), flip_at_(flip_at), cut_after_(cut_after), victim_(victim) {
    listener_.emplace(*Listener::listen(*parse_address("tcp:127.0.0.1:0")));
    uri = listener_->bound().text();
    thread_ = std::thread([this] { serve(); });
  }
  ~Proxy() {
    listener_->close();
    thread_.join();
    std::lock_guard lock(mutex_);
    for (auto& pair : pairs_) {
      pair->a.shutdown();
      pair->b.shutdown();
    }
    for (auto& pair : pairs_) pair->thread.join();
  }
  std::string uri;

 private:
  struct Pair {
    Connection a;
    Connection b;
    std::thread thread;
  };
  void serve() {
    for (size_t n = 0;; ++n) {
      auto a = listener_->accept(std::chrono::milliseconds(20000));
      if (!a) return;
      auto b = connect_to(*parse_address(target_), std::chrono::milliseconds(5000));
      if (!b) return;
      auto pair = std::make_unique<Pair>(std::move(*a), std::move(*b));
      Pair* p = pair.get();
      const bool faulty = n == victim_;
      p->thread = std::thread([this, p, faulty] {
        std::thread back([this, p] { pump(p->b, p->a, false, false); });
        pump(p->a, p->b, true, faulty);
        back.join();
      });
      std::lock_guard lock(mutex_);
      pairs_.push_back(std::move(pair));
    }
  }
  void pump(Connection& from, Connection& to, bool forward, bool faulty) {
    std::vector<uint8_t> buf(65536);
    uint64_t offset = 0;
    const bool faults = forward && faulty;
    for (;;) {
      const ssize_t n = ::read(from.fd(), buf.data(), buf.size());
      if (n <= 0) {
        // Pass the half-close on, like a network would.
        ::shutdown(to.fd(), SHUT_WR);
        return;
      }
      if (faults && flip_at_ >= offset && flip_at_ < offset + static_cast<uint64_t>(n)) {
        buf[flip_at_ - offset] ^= 0x10;
      }
      uint64_t len = static_cast<uint64_t>(n);
      if (faults && offset + len > cut_after_) len = cut_after_ > offset ? cut_after_ - offset : 0;
      if (len > 0 && !to.write_all(std::span<const uint8_t>(buf.data(), len))) {
        ::shutdown(from.fd(), SHUT_RD);
        return;
      }
      offset += static_cast<uint64_t>(n);
      if (faults && offset >= cut_after_) break;
    }
    // The cable is cut: both directions die at once.
    from.shutdown();
    to.shutdown();
  }
  std::string target_;
  uint64_t flip_at_;
  uint64_t cut_after_;
  size_t victim_;
  std::optional<Listener> listener_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Pair>> pairs_;
  std::thread thread_;
};

// --------------------------------------------------------------------------
// R57: a fake destination speaking raw frames

/// A raw destination: accepts, answers the hello and SETUP correctly, and
/// hands the connection over (nullopt when the source never got that far).
inline std::optional<Connection> fake_destination_after_setup(Listener& listener) {
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
inline void fake_destination_sends(Listener& listener, wire::FrameType type,
                                   std::vector<uint8_t> payload) {
  auto c = fake_destination_after_setup(listener);
  if (!c) return;
  wire::FrameWriter writer(*c);
  (void)writer.send(type, payload);
  wire::FrameReader reader(*c);
  while (reader.read()) {
  }
}

}  // namespace godwit::migration::engine_test
