// Multifd channels (multifd.h): sender threads on the source, receiver
// threads and the round barrier on the destination.
#include "migration/multifd.h"

#include <algorithm>

#include "base/log.h"
#include "migration/multifd_packet.h"
#include "migration/wire.h"

namespace godwit::migration {
namespace {

using Clock = std::chrono::steady_clock;

std::string channel_name(uint32_t index) { return "multifd channel " + std::to_string(index); }

int64_t now_ns() { return Clock::now().time_since_epoch().count(); }

/// Waits until `connection` is readable, polling `stop` every 50 ms, until `deadline`.
Result<void> await_readable(Connection& connection, Clock::time_point deadline,
                            const std::function<bool()>& stop, const char* what) {
  for (;;) {
    if (stop()) return fail("cancelled");
    if (TRY(connection.wait_readable(std::chrono::milliseconds(50)))) return {};
    if (Clock::now() >= deadline) return fail(std::string("no ") + what + " in time");
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// source

struct MultifdSender::Channel {
  struct Job {
    bool sync = false;
    uint32_t round = 0;
    PagePlan plan;
  };
  uint32_t index = 0;
  Connection connection;
  std::unique_ptr<multifd::PacketSender> packets;
  std::deque<Job> queue;           ///< under the sender's mutex
  uint32_t queued_pages_jobs = 0;  ///< page jobs in `queue`
  std::atomic<int64_t> write_started_ns{0};
  std::atomic<uint64_t> wire_bytes{0};
  std::atomic<uint64_t> raw_bytes{0};
  std::vector<uint8_t> buffer;  ///< the pages of the packet being sent, copied out of RAM
  std::thread thread;
};

Result<std::unique_ptr<MultifdSender>> MultifdSender::open(
    const Address& address, const std::array<uint8_t, 16>& session, const MultifdSettings& settings,
    const RamMigratable& ram, const Options& options, const std::function<bool()>& cancelled) {
  if (settings.channels < 1 || settings.channels > kMaxChannels)
    return fail("multifd: " + std::to_string(settings.channels) + " channels is out of range 1.." +
                std::to_string(kMaxChannels));
  std::unique_ptr<MultifdSender> sender(new MultifdSender);
  sender->ram_ = &ram;
  sender->options_ = options;
  for (uint32_t i = 0; i < settings.channels; ++i) {
    auto channel = std::make_unique<Channel>();
    channel->index = i;
    const auto connected = [&]() -> Result<void> {
      channel->connection = TRY(connect_to(address, options.connect_timeout));
      wire::Hello hello;
      hello.session_id = session;
      hello.role = wire::ChannelRole::multifd;
      hello.channel_index = i;
      TRY_VOID(wire::send_hello(channel->connection, hello));
      TRY_VOID(await_readable(channel->connection, Clock::now() + options.reply_timeout, cancelled,
                              "hello from the destination"));
      TRY(wire::receive_hello(channel->connection, hello));
      return {};
    }();
    if (!connected) return fail(channel_name(i) + ": " + connected.error().message);
    channel->packets =
        std::make_unique<multifd::PacketSender>(channel->connection, settings.compression);
    sender->channels_.push_back(std::move(channel));
  }
  for (auto& channel : sender->channels_) {
    Channel* c = channel.get();
    c->thread = std::thread([s = sender.get(), c] { s->sender_main(*c); });
  }
  log::info("migration: " + std::to_string(settings.channels) + " multifd channels open, " +
            to_string(settings.compression));
  return sender;
}

MultifdSender::~MultifdSender() {
  shutdown();
  for (auto& channel : channels_) {
    if (channel->thread.joinable()) channel->thread.join();
  }
}

void MultifdSender::sender_main(Channel& channel) {
  for (;;) {
    Channel::Job job;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || failure_ || !channel.queue.empty(); });
      if (stopping_ || failure_) return;
      job = std::move(channel.queue.front());
      channel.queue.pop_front();
      if (!job.sync) --channel.queued_pages_jobs;
    }
    changed_.notify_all();
    channel.write_started_ns = now_ns();
    Result<void> sent;
    if (job.sync) {
      sent = channel.packets->send_sync(job.round);
    } else {
      // A copy first: the guest keeps writing its pages, and a checksum or
      // a compressor must see the same bytes that are sent.
      channel.buffer.resize(job.plan.data.size() * kPageSize);
      sent = ram_->copy_pages(job.plan.data, channel.buffer);
      if (sent) {
        sent = channel.packets->send_pages(job.round, job.plan.data, channel.buffer, job.plan.zero);
      }
    }
    channel.write_started_ns = 0;
    channel.wire_bytes = channel.packets->bytes_sent();
    channel.raw_bytes = channel.packets->raw_bytes();
    if (!sent) {
      record_failure(channel.index, sent.error().message);
      return;
    }
  }
}

void MultifdSender::record_failure(uint32_t index, const std::string& what) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || failure_) return;
    failure_ = channel_name(index) + ": " + what;
  }
  log::error("migration: " + channel_name(index) + ": " + what);
  // The other channels stay connected until the engine has sent CANCEL
  // with this reason (then shutdown()): closing them now would make the
  // destination blame whichever of them it noticed first.
  changed_.notify_all();
}

Result<void> MultifdSender::send(PagePlan plan) {
  std::unique_lock lock(mutex_);
  const auto room = [&] {
    return std::ranges::any_of(
        channels_, [&](const auto& c) { return c->queued_pages_jobs < options_.queue_depth; });
  };
  changed_.wait(lock, [&] { return stopping_ || failure_ || room(); });
  if (failure_) return fail(*failure_);
  if (stopping_) return fail("multifd channels are shut down");
  // The shortest queue, round robin among equals, so a slow channel gets
  // less work instead of holding the others up.
  const size_t n = channels_.size();
  size_t best = next_ % n;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (next_ + k) % n;
    if (channels_[i]->queued_pages_jobs < channels_[best]->queued_pages_jobs) best = i;
  }
  next_ = best + 1;
  Channel& c = *channels_[best];
  c.queue.push_back({false, round_, std::move(plan)});
  ++c.queued_pages_jobs;
  lock.unlock();
  changed_.notify_all();
  return {};
}

Result<uint32_t> MultifdSender::sync() {
  std::unique_lock lock(mutex_);
  if (failure_) return fail(*failure_);
  if (stopping_) return fail("multifd channels are shut down");
  const uint32_t round = round_++;
  for (auto& channel : channels_) channel->queue.push_back({true, round, {}});
  lock.unlock();
  changed_.notify_all();
  return round;
}

std::optional<std::string> MultifdSender::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void MultifdSender::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& channel : channels_) channel->connection.shutdown();
}

std::optional<Clock::time_point> MultifdSender::oldest_write() const {
  int64_t oldest = 0;
  for (const auto& channel : channels_) {
    const int64_t t = channel->write_started_ns;
    if (t != 0 && (oldest == 0 || t < oldest)) oldest = t;
  }
  if (oldest == 0) return std::nullopt;
  return Clock::time_point(Clock::duration(oldest));
}

uint64_t MultifdSender::wire_bytes() const {
  uint64_t total = 0;
  for (const auto& channel : channels_) total += channel->wire_bytes;
  return total;
}

uint64_t MultifdSender::raw_bytes() const {
  uint64_t total = 0;
  for (const auto& channel : channels_) total += channel->raw_bytes;
  return total;
}

// ---------------------------------------------------------------------------
// destination

struct MultifdReceiver::Channel {
  uint32_t index = 0;
  Connection connection;
  std::unique_ptr<multifd::PacketReceiver> packets;
  uint32_t synced = 0;  ///< the last round whose SYNC it read; under the receiver's mutex
  std::atomic<uint64_t> wire_bytes{0};
  std::thread thread;
};

Result<std::unique_ptr<MultifdReceiver>> MultifdReceiver::accept(
    Listener& listener, const std::array<uint8_t, 16>& session, const MultifdSettings& settings,
    RamMigratable& ram, Options options, const std::atomic<bool>& aborted) {
  const uint32_t n = settings.channels;
  std::unique_ptr<MultifdReceiver> receiver(new MultifdReceiver);
  receiver->ram_ = &ram;
  receiver->codec_ = settings.compression.codec;
  receiver->options_ = std::move(options);
  std::vector<std::unique_ptr<Channel>> slots(n);
  const auto deadline = Clock::now() + receiver->options_.accept_timeout;
  const auto stop = [&] { return aborted.load(); };
  for (uint32_t connected = 0; connected < n;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const std::string progress =
        std::to_string(connected) + " of " + std::to_string(n) + " multifd channels connected";
    if (left.count() <= 0) {
      return fail(progress + " within " +
                  std::to_string(receiver->options_.accept_timeout.count()) + " ms");
    }
    auto accepted = listener.accept(left);
    if (!accepted) {
      return fail(aborted ? std::string("aborted") : progress + ": " + accepted.error().message);
    }
    Connection connection = std::move(*accepted);
    wire::Hello ours;
    ours.role = wire::ChannelRole::multifd;
    ours.session_id = session;
    auto hello = [&]() -> Result<wire::Hello> {
      TRY_VOID(await_readable(connection, deadline, stop, "hello"));
      return wire::receive_hello(connection, ours);
    }();
    if (aborted) return fail("aborted");
    // Anything else knocking on this port is not part of this migration.
    if (!hello) {
      log::warn("incoming migration: ignoring a connection from " + connection.peer() + ": " +
                hello.error().message);
      continue;
    }
    if (hello->role != wire::ChannelRole::multifd || hello->session_id != session) {
      log::warn("incoming migration: ignoring a connection from " + connection.peer() +
                " that is not a multifd channel of session " + wire::session_text(session));
      continue;
    }
    const uint32_t index = hello->channel_index;
    if (index >= n) {
      return fail(channel_name(index) + ": index out of range (the source announced " +
                  std::to_string(n) + " channels)");
    }
    if (slots[index]) return fail(channel_name(index) + ": connected twice");
    ours.channel_index = index;
    if (auto answered = wire::send_hello(connection, ours); !answered) {
      return fail(channel_name(index) + ": " + answered.error().message);
    }
    auto channel = std::make_unique<Channel>();
    channel->index = index;
    channel->connection = std::move(connection);
    channel->packets =
        std::make_unique<multifd::PacketReceiver>(channel->connection, settings.compression.codec);
    slots[index] = std::move(channel);
    ++connected;
  }
  receiver->channels_ = std::move(slots);
  for (auto& channel : receiver->channels_) {
    Channel* c = channel.get();
    c->thread = std::thread([r = receiver.get(), c] { r->receiver_main(*c); });
  }
  log::info("incoming migration: " + std::to_string(n) + " multifd channels connected");
  return receiver;
}

MultifdReceiver::~MultifdReceiver() { stop(); }

void MultifdReceiver::receiver_main(Channel& channel) {
  uint32_t round = 1;
  for (;;) {
    auto packet = channel.packets->read();
    channel.wire_bytes = channel.packets->bytes_received();
    if (!packet) {
      record_failure(channel.index, packet.error().message);
      return;
    }
    const uint32_t packet_round = packet->header.round;
    if (packet->sync()) {
      if (packet_round != round) {
        record_failure(channel.index, "SYNC of round " + std::to_string(packet_round) +
                                          " while in round " + std::to_string(round));
        return;
      }
      std::unique_lock lock(mutex_);
      channel.synced = round;
      changed_.notify_all();
      // The barrier: nothing of the next round before every channel has
      // finished this one.
      changed_.wait(lock, [&] {
        return stopping_ || failure_ ||
               std::ranges::all_of(channels_, [&](const auto& c) { return c->synced >= round; });
      });
      if (stopping_ || failure_) return;
      ++round;
      continue;
    }
    if (packet_round != round) {
      record_failure(channel.index, "a packet of round " + std::to_string(packet_round) +
                                        " arrived in round " + std::to_string(round) +
                                        " (rounds end only with SYNC)");
      return;
    }
    if (options_.before_apply) options_.before_apply(channel.index, round);
    if (auto loaded = ram_->load_pages(packet->data_gpas, packet->data, packet->zero_gpas);
        !loaded) {
      record_failure(channel.index, loaded.error().message);
      return;
    }
  }
}

void MultifdReceiver::record_failure(uint32_t index, const std::string& what) {
  {
    std::lock_guard lock(mutex_);
    // Reads fail once stop() shut the channels down: not a failure.
    if (stopping_ || failure_) return;
    failure_ = channel_name(index) + ": " + what;
  }
  changed_.notify_all();
}

Result<void> MultifdReceiver::wait_flush(uint32_t round, const std::atomic<bool>& aborted) {
  std::unique_lock lock(mutex_);
  if (round != flushed_ + 1) {
    return fail("FLUSH of round " + std::to_string(round) + " after round " +
                std::to_string(flushed_));
  }
  for (;;) {
    if (failure_) return fail(*failure_);
    if (aborted || stopping_) return fail("aborted");
    if (std::ranges::all_of(channels_, [&](const auto& c) { return c->synced >= round; })) break;
    changed_.wait_for(lock, std::chrono::milliseconds(50));
  }
  flushed_ = round;
  return {};
}

std::optional<std::string> MultifdReceiver::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void MultifdReceiver::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& channel : channels_) channel->connection.shutdown();
  for (auto& channel : channels_) {
    if (channel->thread.joinable()) channel->thread.join();
  }
}

uint64_t MultifdReceiver::wire_bytes() const {
  uint64_t total = 0;
  for (const auto& channel : channels_) total += channel->wire_bytes;
  return total;
}

}  // namespace godwit::migration
