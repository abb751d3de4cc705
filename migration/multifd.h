// Multifd: RAM pages of a migration on N extra connections ("channels"),
// each with its own sender thread (source) and receiver thread
// (destination), optionally zstd-compressed, one codec context per thread.
// The main channel keeps carrying everything else (setup, device state,
// PING, COMPLETE, GO) and the FLUSH markers.
//
// Rounds. A page can be pending again only after a dirty-log collect, so the
// source ends a round right before every exact or final query: each channel
// sends SYNC(r) after the last packet it was given in round r, and the main
// channel sends FLUSH(r). On the destination:
//   - a receiver that reads SYNC(r) waits until every channel has read its
//     SYNC(r) before it applies any packet of round r+1, so a page sent in
//     round r on a slow channel can never overwrite the newer copy of round
//     r+1 that arrived first on a fast one;
//   - the main channel does not go past FLUSH(r) until every receiver has
//     read its SYNC(r), so COMPLETE (after the last FLUSH) finds every page
//     applied, and postcopy (R50-R54) will find the precopy pages in place
//     before the VM stops.
// Within one round a page is planned at most once (it leaves the pending set
// until the next collect), so packets of one round apply in any order.
//
//   source                                      destination
//   migration thread: plan_pages() -> queue i   receiver i: read packet,
//   sender i: copy pages, compress, send          check round, load_pages()
//   sync(): SYNC(r) on every queue, FLUSH(r)    FLUSH(r): wait for all SYNC(r)
//
// Failure of any channel (a write or read error, a corrupt packet, a packet
// of the wrong round, a stall) is recorded once, naming the channel
// ("multifd channel 2: ..."), and fails the migration through the engine's
// usual path: the destination sends ERROR with that text, the source
// resumes. shutdown() wakes every blocked thread; the destructors join them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "migration/ram_migratable.h"
#include "migration/status.h"
#include "migration/transport.h"

namespace godwit::migration {

/// What both ends agreed on for one migration's channels.
struct MultifdSettings {
  uint32_t channels = 1;
  Compression compression;  ///< the source's codec and level (the destination needs the codec)
};

/// Source side: the channels and their sender threads.
class MultifdSender {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{10000};
    std::chrono::milliseconds reply_timeout{30000};  ///< for each channel's hello
    uint32_t queue_depth = 2;  ///< packets waiting per channel, besides the one being sent
  };
  /// Connects `settings.channels` times to `address`, sends each a hello
  /// (role multifd, `session`, its index) and waits for the destination's
  /// hello; then starts one sender thread per channel reading pages from
  /// `ram`. `cancelled` is polled while waiting.
  [[nodiscard]] static Result<std::unique_ptr<MultifdSender>> open(
      const Address& address, const std::array<uint8_t, 16>& session,
      const MultifdSettings& settings, const RamMigratable& ram, const Options& options,
      const std::function<bool()>& cancelled);
  ~MultifdSender();
  MultifdSender(const MultifdSender&) = delete;
  MultifdSender& operator=(const MultifdSender&) = delete;

  /// Hands one packet's pages (the current round) to the channel with the
  /// shortest queue; blocks while every queue is full. Fails once any
  /// channel has failed or after shutdown().
  [[nodiscard]] Result<void> send(PagePlan plan);
  /// Ends the current round: every channel sends SYNC(round) after what it
  /// was given. Never blocks on the queues. Returns the round it ended.
  [[nodiscard]] Result<uint32_t> sync();
  /// The first channel failure, naming the channel.
  [[nodiscard]] std::optional<std::string> failure() const;
  /// Makes every blocked write and wait fail at once; idempotent.
  void shutdown();
  /// The start of the oldest write still in progress (steady clock), if any:
  /// a channel whose write makes no headway means a destination that
  /// stopped reading it.
  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> oldest_write() const;
  /// Bytes written on all channels (hellos excluded).
  [[nodiscard]] uint64_t wire_bytes() const;
  /// Page bytes those writes carried before compression.
  [[nodiscard]] uint64_t raw_bytes() const;

 private:
  struct Channel;
  MultifdSender() = default;
  void sender_main(Channel& channel);
  void record_failure(uint32_t index, const std::string& what);

  const RamMigratable* ram_ = nullptr;
  Options options_;
  std::vector<std::unique_ptr<Channel>> channels_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;  ///< a queue shrank, a failure, shutdown
  std::optional<std::string> failure_;
  bool stopping_ = false;
  uint32_t round_ = 1;
  size_t next_ = 0;  ///< round-robin start among equally short queues
};

/// Destination side: the accepted channels and their receiver threads.
class MultifdReceiver {
 public:
  struct Options {
    std::chrono::milliseconds accept_timeout{10000};  ///< for all channels to connect
    /// Test hook: called on a receiver thread before it applies a packet.
    std::function<void(uint32_t channel, uint32_t round)> before_apply;
  };
  /// Accepts `settings.channels` connections on `listener` whose hello
  /// carries `session` (a connection with another session id is closed and
  /// ignored; a repeated or out-of-range index fails), answers each hello,
  /// then starts one receiver thread per channel loading into `ram`.
  /// `aborted` is polled while waiting.
  [[nodiscard]] static Result<std::unique_ptr<MultifdReceiver>> accept(
      Listener& listener, const std::array<uint8_t, 16>& session, const MultifdSettings& settings,
      RamMigratable& ram, Options options, const std::atomic<bool>& aborted);
  ~MultifdReceiver();
  MultifdReceiver(const MultifdReceiver&) = delete;
  MultifdReceiver& operator=(const MultifdReceiver&) = delete;

  /// FLUSH(round) on the main channel: waits until every channel has read
  /// SYNC(round), i.e. every page of rounds <= round is in guest memory.
  /// Fails on a channel failure, on `aborted`, and on a round out of order.
  [[nodiscard]] Result<void> wait_flush(uint32_t round, const std::atomic<bool>& aborted);
  /// The first channel failure, naming the channel.
  [[nodiscard]] std::optional<std::string> failure() const;
  /// Stops the receivers (shuts the channels down; their read errors after
  /// this are not failures) and joins them; idempotent.
  void stop();
  /// Bytes read on all channels.
  [[nodiscard]] uint64_t wire_bytes() const;

 private:
  struct Channel;
  MultifdReceiver() = default;
  void receiver_main(Channel& channel);
  void record_failure(uint32_t index, const std::string& what);

  RamMigratable* ram_ = nullptr;
  Options options_;
  Codec codec_ = Codec::none;
  std::vector<std::unique_ptr<Channel>> channels_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;  ///< a channel synced, a failure, stop
  std::optional<std::string> failure_;
  bool stopping_ = false;
  uint32_t flushed_ = 0;  ///< the last FLUSH round waited for
};

}  // namespace godwit::migration
