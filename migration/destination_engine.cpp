// MigrationDestination (engine.h): accept one source, check it can take the
// VM, load sections in place, and start the guest only on GO. Any failure is
// sent to the source as ERROR (its text is what the source reports) and the
// guest is never started.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include "base/log.h"
#include "migration/engine.h"
#include "migration/multifd.h"
#include "migration/ram_migratable.h"

namespace godwit::migration {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t us_since(Clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

/// Populates `memory` writable, 64 MiB at a time, until done or `stop`. The
/// loader writes into the same pages meanwhile: populating never changes a
/// page's contents, it only maps it, so the race is harmless.
void prefault(GuestMemory& memory, const std::atomic<bool>& stop) {
  constexpr uint64_t kChunk = 64ull << 20;
  for (const MemoryRegion& r : memory.regions()) {
    for (uint64_t off = 0; off < r.size && !stop; off += kChunk) {
      const uint64_t len = std::min(kChunk, r.size - off);
      if (::madvise(r.host + off, len, MADV_POPULATE_WRITE) != 0) {
        log::debug(std::string("incoming migration: no prefault (madvise: ") +
                   std::strerror(errno) + ")");
        return;
      }
    }
  }
}

}  // namespace

MigrationDestination::MigrationDestination(DestinationVm& vm, EngineTuning tuning)
    : vm_(vm), tuning_(std::move(tuning)) {
  status_.role = MigrationRole::destination;
}

MigrationDestination::~MigrationDestination() { abort(); }

Result<Address> MigrationDestination::listen(const Address& address) {
  listener_.emplace(TRY(Listener::listen(address)));
  std::lock_guard lock(mutex_);
  status_.uri = listener_->bound().text();
  status_.state = MigrationState::setup;
  return listener_->bound();
}

void MigrationDestination::set_state(MigrationState to) {
  MigrationState from;
  {
    std::lock_guard lock(mutex_);
    from = status_.state;
    status_.state = to;
  }
  log::info("incoming migration: " + std::string(to_string(from)) + " -> " +
            std::string(to_string(to)));
  if (tuning_.on_transition) tuning_.on_transition(from, to);
}

void MigrationDestination::abort() {
  aborted_ = true;
  std::lock_guard lock(mutex_);
  if (listener_) listener_->close();
  if (connection_ != nullptr) connection_->shutdown();
}

MigrationStatus MigrationDestination::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

Result<void> MigrationDestination::run() {
  if (!listener_) return fail("incoming migration: listen() was not called");
  const Clock::time_point start = Clock::now();
  auto accepted = listener_->accept(std::chrono::milliseconds(-1));
  if (!accepted) {
    const std::string why = aborted_ ? "aborted" : accepted.error().message;
    {
      std::lock_guard lock(mutex_);
      status_.error = "incoming migration: " + why;
    }
    set_state(MigrationState::failed);
    return fail("incoming migration: " + why);
  }
  Connection connection = std::move(*accepted);
  {
    std::lock_guard lock(mutex_);
    connection_ = &connection;
  }
  if (aborted_) connection.shutdown();
  log::info("incoming migration: connection from " + connection.peer());

  Result<void> result = receive(connection);
  listener_->close();
  {
    std::lock_guard lock(mutex_);
    connection_ = nullptr;
    status_.total_time_ms = us_since(start) / 1000;
  }
  for (Migratable* m : vm_.migratables()) {
    if (auto r = m->cleanup(result.has_value()); !r) {
      log::warn("incoming migration: cleanup of " + m->key().name() + ": " + r.error().message);
    }
  }
  if (!result) {
    std::string error = aborted_ ? "aborted" : result.error().message;
    // Best effort: the source reports this text as the reason.
    if (!connection.is_shut_down()) {
      wire::FrameWriter writer(connection);
      (void)writer.send(wire::FrameType::error, wire::encode_text(error));
      // The source stops sending once it reads the ERROR and closes.
      connection.close_gracefully(std::chrono::milliseconds(2000));
    }
    connection.shutdown();
    {
      std::lock_guard lock(mutex_);
      status_.error = error;
    }
    set_state(MigrationState::failed);
    log::error("incoming migration failed: " + error + " (the guest was not started)");
    return fail("incoming migration failed: " + error);
  }
  connection.shutdown();
  set_state(MigrationState::completed);
  return {};
}

Result<void> MigrationDestination::receive(Connection& connection) {
  wire::Hello ours;
  ours.role = wire::ChannelRole::main;
  const wire::Hello theirs = TRY(wire::exchange_hello(connection, ours));
  if (theirs.role != wire::ChannelRole::main) {
    return fail("the first connection must be the main channel");
  }
  wire::FrameReader reader(connection);
  wire::FrameWriter writer(connection);

  // --- setup: compatibility and negotiation (R34) ---
  const wire::Frame first = TRY(reader.read());
  if (first.type != static_cast<uint16_t>(wire::FrameType::setup)) {
    return fail("expected SETUP, got " + wire::frame_type_name(first.type));
  }
  const wire::SetupMessage setup = TRY(wire::decode_setup(first));
  TRY_VOID(with_context(wire::check_compatible(setup.vm, vm_.describe()), "incompatible VM"));
  if (setup.switchover_ack_mode != tuning_.switchover_ack_mode) {
    return fail("switchover-ack mode not agreed: source " +
                wire::to_string(setup.switchover_ack_mode) + ", destination " +
                wire::to_string(tuning_.switchover_ack_mode));
  }
  RamMigratable* multifd_ram = nullptr;
  if ((setup.features & wire::kFeatureMultifd) != 0) {
    for (Migratable* m : vm_.migratables()) {
      if (auto* ram = dynamic_cast<RamMigratable*>(m)) multifd_ram = ram;
    }
    if (multifd_ram == nullptr) return fail("multifd: this destination has no RAM loader");
  }
  wire::SetupAccept accept;
  accept.features = setup.features & wire::kSupportedFeatures;
  accept.switchover_ack_mode = tuning_.switchover_ack_mode;
  TRY_VOID(writer.send(wire::FrameType::setup_accept, wire::encode_setup_accept(accept)));

  // Multifd: the source opens its channels right after SETUP_ACCEPT; no
  // other connection is taken after them (one source per destination).
  std::unique_ptr<MultifdReceiver> multifd;
  if (multifd_ram != nullptr) {
    const MultifdSettings settings{setup.multifd_channels, {setup.multifd_codec, 1}};
    MultifdReceiver::Options options;
    options.accept_timeout = tuning_.connect_timeout;
    options.before_apply = tuning_.multifd_before_apply;
    multifd = TRY(MultifdReceiver::accept(*listener_, theirs.session_id, settings, *multifd_ram,
                                          options, aborted_));
    std::lock_guard lock(mutex_);
    status_.channels = settings.channels;
    status_.compression = settings.compression;
  }
  listener_->close();
  // A channel failure may be a consequence of the source failing (it
  // closes every channel after its CANCEL): the source's reason wins when it
  // arrives soon.
  const auto explain = [&](const std::string& channel_failure) -> std::string {
    if (connection.wait_readable(std::chrono::milliseconds(1000)).value_or(false)) {
      if (auto frame = reader.read();
          frame && frame->type == static_cast<uint16_t>(wire::FrameType::cancel)) {
        return "migration cancelled by the source: " +
               wire::decode_text(*frame).value_or("(unreadable reason)");
      }
    }
    return channel_failure;
  };
  // A receiver's failure must end the wait for the next main-channel frame.
  const auto read_main = [&]() -> Result<wire::Frame> {
    // What the source says first (a CANCEL names the cause; channels it
    // closes afterwards are a consequence).
    while (multifd && !TRY(connection.wait_readable(std::chrono::milliseconds(0)))) {
      if (auto failed = multifd->failure()) return fail(explain(*failed));
      if (TRY(connection.wait_readable(std::chrono::milliseconds(100)))) break;
    }
    return reader.read();
  };

  // Fresh RAM is populated in the background while the first round arrives.
  std::atomic<bool> stop_prefault{false};
  std::thread prefaulter;
  if (GuestMemory* memory = vm_.ram()) {
    prefaulter = std::thread([memory, &stop_prefault] { prefault(*memory, stop_prefault); });
  }
  struct JoinPrefault {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinPrefault() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } join_prefault{stop_prefault, prefaulter};

  std::map<SectionKey, Migratable*> loaders;
  for (Migratable* m : vm_.migratables()) loaders[m->key()] = m;
  set_state(MigrationState::active);

  // --- sections until COMPLETE ---
  for (;;) {
    const wire::Frame frame = TRY(read_main());
    {
      std::lock_guard lock(mutex_);
      status_.transferred_bytes = reader.bytes_received() + (multifd ? multifd->wire_bytes() : 0);
      if (multifd) status_.multifd_bytes = multifd->wire_bytes();
    }
    switch (static_cast<wire::FrameType>(frame.type)) {
      case wire::FrameType::section: {
        const wire::SectionFrame section = TRY(wire::decode_section(frame));
        const auto it = loaders.find(section.header.key);
        if (it == loaders.end()) {
          return fail("section " + section.header.key.name() + " has no loader here");
        }
        Migratable& m = *it->second;
        const uint32_t v = section.header.version;
        if (v < m.min_version() || v > m.version()) {
          return fail(section.header.key.name() + ": version " + std::to_string(v) +
                      " is outside what this destination loads (" +
                      std::to_string(m.min_version()) + ".." + std::to_string(m.version()) + ")");
        }
        SectionReader in(section.header.key.name(), section.payload);
        TRY_VOID(with_context(m.load(in, v), "loading " + section.header.key.name()));
        break;
      }
      case wire::FrameType::round: {
        const uint32_t n = TRY(wire::decode_u32(frame));
        std::lock_guard lock(mutex_);
        status_.iterations = n;
        break;
      }
      case wire::FrameType::flush: {
        const uint32_t round = TRY(wire::decode_u32(frame));
        if (!multifd) return fail("FLUSH on a migration without multifd channels");
        if (auto flushed = multifd->wait_flush(round, aborted_); !flushed) {
          return fail(multifd->failure() ? explain(flushed.error().message)
                                         : flushed.error().message);
        }
        break;
      }
      case wire::FrameType::ping: {
        const uint32_t v = TRY(wire::decode_u32(frame));
        TRY_VOID(writer.send(wire::FrameType::pong, wire::encode_u32(v)));
        break;
      }
      case wire::FrameType::cancel: {
        const std::string why = TRY(wire::decode_text(frame));
        return fail("migration cancelled by the source: " + why);
      }
      case wire::FrameType::complete: {
        TRY_VOID(wire::decode_empty(frame));
        if (multifd) {
          // The last FLUSH came before COMPLETE: every page is in place.
          if (auto failed = multifd->failure()) return fail(*failed);
          multifd->stop();
        }
        set_state(MigrationState::device);
        const Clock::time_point t = Clock::now();
        TRY_VOID(with_context(vm_.finish_load(), "finishing the load"));
        const uint64_t load_us = us_since(t);
        TRY_VOID(writer.send(wire::FrameType::loaded, wire::encode_u64(load_us)));

        // Only GO starts the guest; anything else (or nothing) means the
        // source keeps it.
        auto next_frame = reader.read();
        if (!next_frame) {
          return fail("connection lost before GO (" + next_frame.error().message +
                      "): the guest was not started");
        }
        const wire::Frame next = std::move(*next_frame);
        if (next.type == static_cast<uint16_t>(wire::FrameType::cancel)) {
          const std::string why = TRY(wire::decode_text(next));
          return fail("migration cancelled by the source: " + why);
        }
        if (next.type != static_cast<uint16_t>(wire::FrameType::go)) {
          return fail("expected GO, got " + wire::frame_type_name(next.type));
        }
        TRY_VOID(wire::decode_empty(next));
        const Clock::time_point go = Clock::now();
        TRY_VOID(with_context(vm_.start(), "starting the guest"));
        const uint64_t resume_us = us_since(go);
        {
          std::lock_guard lock(mutex_);
          status_.downtime.destination_load_us = load_us;
          status_.downtime.resume_us = resume_us;
        }
        // The guest runs: a lost RESUMED only costs the source its figure.
        if (auto r = writer.send(wire::FrameType::resumed, wire::encode_u64(resume_us)); !r) {
          log::warn("incoming migration: RESUMED not delivered: " + r.error().message);
        }
        return {};
      }
      default:
        return fail("unexpected " + wire::frame_type_name(frame.type) + " on the main channel");
    }
  }
}

}  // namespace godwit::migration
