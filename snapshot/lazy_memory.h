// LazyMemoryLoader: restores guest RAM from a memory snapshot on demand
// (`godwit --restore D --restore-memory lazy`). Guest RAM is emptied and put
// under one userfaultfd (MISSING mode); a fault thread fills the 2 MiB chunk a
// touched page belongs to, and background prefetchers fill every other chunk
// in order, so the guest runs before its memory is loaded.
//
// One state per chunk of the image layout; a chunk is filled exactly once,
// by whoever claims it first (the claim is a compare-and-swap on the state):
//
//   pending --claim (fault thread or prefetcher)--> filling --fill ok--> done
//                                                     |   |
//                                                     |   +--read/checksum error--> failed
//                                                     |
//     the fault thread finds a prefetcher filling it: parks the fault and
//     marks the chunk wanted
//                                                     v
//                                             filling_wanted --fill ok--> done, and the
//                                                     prefetcher wakes the fault thread
//
// A fault is always answered with the chunk done: filling copies the chunk's
// data runs (UFFDIO_COPY wakes threads waiting on them), then the fault thread
// resolves the faulting page itself (UFFDIO_ZEROPAGE if still missing, else
// UFFDIO_WAKE), so no waiter depends on the order of the two threads' ioctls.
// When every chunk is done the fault thread unregisters and closes the
// userfaultfd. A failed chunk is never installed (the guest never sees
// unverified bytes); faults on it are held until on_error has returned (the
// VMM has requested a stop), then answered with zero pages so that no
// thread stays blocked. docs/snapshot-memory.md, "Lazy restore", has the rest.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_memory.h"
#include "snapshot/memory_image.h"

namespace godwit::snapshot {

/// How the lazy loader works.
struct LazyOptions {
  bool prefetch = true;           ///< background thread(s) fill every chunk in order
  unsigned prefetch_threads = 1;  ///< prefetch threads (>= 1)
};

/// What the lazy loader has done so far.
struct LazyStats {
  uint64_t faults = 0;             ///< userfaults handled
  uint64_t chunks_on_fault = 0;    ///< chunks filled because a fault asked for them
  uint64_t chunks_prefetched = 0;  ///< chunks filled by the prefetcher
  uint64_t max_fault_us = 0;       ///< longest fault served (read of the uffd msg -> wake)
  bool complete = false;           ///< every chunk is filled; the userfaultfd is closed
};

/// Serves guest RAM from a MemoryImage through a userfaultfd until every
/// chunk is loaded. Must be destroyed before the GuestMemory it fills.
class LazyMemoryLoader {
 public:
  /// Called once, from a loader thread, when a chunk cannot be served.
  using ErrorCallback = std::function<void(const Error&)>;

  /// Succeeds when this process may create a userfaultfd that also catches
  /// kernel-mode faults (KVM's); the error's code is the errno (EPERM, ENOSYS).
  [[nodiscard]] static Result<void> userfaultfd_available();

  /// Checks the layout of `memory` against `image` (nothing is touched when it
  /// differs), empties guest RAM, registers it with one userfaultfd and starts
  /// the fault thread and, with options.prefetch, the prefetchers.
  /// `on_error` must not block for long (the VMM requests a stop there).
  [[nodiscard]] static Result<std::unique_ptr<LazyMemoryLoader>> start(MemoryImage image,
                                                                       GuestMemory& memory,
                                                                       const LazyOptions& options,
                                                                       ErrorCallback on_error);

  /// Stops the threads, then closes the userfaultfd, which releases any
  /// thread still waiting on a missing page (it then reads zero).
  ~LazyMemoryLoader();
  LazyMemoryLoader(const LazyMemoryLoader&) = delete;
  LazyMemoryLoader& operator=(const LazyMemoryLoader&) = delete;

  /// Blocks until every chunk is loaded (ok) or a chunk failed (the error
  /// names the file and chunk). Without prefetch it returns only once the
  /// guest has touched every chunk.
  [[nodiscard]] Result<void> wait();
  /// A snapshot of the counters.
  [[nodiscard]] LazyStats stats() const;

 private:
  /// A fault waiting for a chunk another thread is filling.
  struct ParkedFault {
    uint64_t address;
    size_t chunk;
    std::chrono::steady_clock::time_point since;
  };

  LazyMemoryLoader(MemoryImage image, GuestMemory& memory, const LazyOptions& options,
                   ErrorCallback on_error);
  [[nodiscard]] Result<void> empty_and_register();

  void fault_loop();
  void prefetch_loop();
  /// Serves one fault; false when it had to be parked.
  [[nodiscard]] bool handle_fault(uint64_t address, size_t chunk);
  /// Answers a fault on a chunk that is done (or failed, once reported): zero
  /// page if still missing, else wake.
  [[nodiscard]] Result<void> resolve_in_done_chunk(uint64_t address);
  void serve_parked();
  void finish();

  /// Reads chunk `chunk` into `buffer` (verified) and installs it.
  [[nodiscard]] Result<void> fill_chunk(size_t chunk, std::vector<uint8_t>& buffer);
  /// Marks a filled chunk done; tells the fault thread when it waits for it
  /// or when it was the last one.
  void mark_done(size_t chunk);
  void report_error(const Error& error);
  void notify_fault_thread();
  void note_fault_served(std::chrono::steady_clock::time_point since);

  [[nodiscard]] Result<void> uffd_copy(uint64_t dst, const uint8_t* src, uint64_t len);
  [[nodiscard]] Result<void> uffd_zeropage(uint64_t dst, uint64_t len);
  [[nodiscard]] Result<void> uffd_wake(uint64_t dst, uint64_t len);
  [[nodiscard]] std::optional<size_t> chunk_of_host(uint64_t address) const;
  [[nodiscard]] uint64_t chunk_host(size_t chunk) const;
  [[nodiscard]] bool page_is_zero_in_image(size_t chunk, uint32_t page) const;
  [[nodiscard]] std::string describe_host(uint64_t address, uint64_t len) const;

  MemoryImage image_;
  GuestMemory& memory_;
  LazyOptions options_;
  ErrorCallback on_error_;
  bool hugetlb_ = false;  ///< one UFFDIO_COPY per 2 MiB huge page; no UFFDIO_ZEROPAGE there

  UniqueFd uffd_;
  int uffd_raw_ = -1;  ///< uffd_'s number, read by the filling threads
  UniqueFd wake_fd_;   ///< eventfd: stop, a wanted chunk is done, the last chunk is done
  std::unique_ptr<std::atomic<uint8_t>[]> chunk_state_;
  size_t chunk_count_ = 0;
  std::atomic<size_t> done_count_{0};
  std::atomic<size_t> prefetch_cursor_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> error_reported_{false};  ///< on_error has returned
  std::atomic<uint32_t> serving_faults_{0};  ///< the prefetchers pause while this is 1

  std::atomic<uint64_t> faults_{0};
  std::atomic<uint64_t> chunks_on_fault_{0};
  std::atomic<uint64_t> chunks_prefetched_{0};
  std::atomic<uint64_t> max_fault_us_{0};

  mutable std::mutex mu_;
  std::condition_variable finished_;
  bool complete_ = false;       ///< guarded by mu_
  std::optional<Error> error_;  ///< guarded by mu_

  std::vector<ParkedFault> parked_;  ///< fault thread only
  std::vector<uint8_t> fault_buffer_;
  std::vector<uint8_t> zero_chunk_;  ///< hugetlbfs only: source of zero huge pages
  std::thread fault_thread_;
  std::vector<std::thread> prefetchers_;
};

}  // namespace godwit::snapshot
