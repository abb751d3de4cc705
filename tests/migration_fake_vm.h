// Fake VMs for the migration engine, shared by its unit tests
// (tests/unit/migration_engine_test.cpp) and its benchmark
// (bench/migration_engine_bench.cpp): a source whose "guest" is an a-b
// dirtier thread writing real guest memory (memfd GuestMemory) and marking
// every page it writes in the VMM dirty bitmap, as KVM's dirty log would
// show it; a stop-copy-only device; a destination with fresh memory.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "memory/guest_memory.h"
#include "migration/engine.h"
#include "migration/ram_migratable.h"
#include "snapshot/page_set.h"

namespace godwit::migration::fake {

using Clock = std::chrono::steady_clock;

inline constexpr uint64_t kRamBytes = 32ull << 20;
inline constexpr uint64_t kDirtyPages = 2048;  // 8 MiB written by the dirtier

/// memfd guest memory of `bytes`; aborts the process when it cannot be made.
inline std::unique_ptr<GuestMemory> make_memory(uint64_t bytes) {
  auto memory =
      GuestMemory::create({.size = bytes, .backing = MemoryBacking::memfd, .hugetlbfs_dir = {}});
  if (!memory) {
    std::fprintf(stderr, "guest memory of %llu bytes: %s\n", static_cast<unsigned long long>(bytes),
                 memory.error().message.c_str());
    std::abort();
  }
  return std::move(*memory);
}

// --------------------------------------------------------------------------
// the fake guest: an a-b dirtier

/// Increments a u32 counter at the start of each of the first `pages` pages,
/// one pass after another, marking each page dirty after writing it (as
/// KVM's log would show it). pause() parks it between two pages.
class Dirtier {
 public:
  Dirtier(GuestMemory& memory, uint64_t pages) : memory_(memory), pages_(pages) {}
  ~Dirtier() { stop_thread(); }

  void start() {
    std::lock_guard lock(mutex_);
    if (running_) return;
    running_ = true;
    quit_ = false;
    thread_ = std::thread([this] { loop(); });
  }
  void pause() { stop_thread(); }
  [[nodiscard]] bool running() const {
    std::lock_guard lock(mutex_);
    return running_;
  }
  [[nodiscard]] uint64_t passes() const { return passes_; }
  void set_throttle(uint32_t percent) { throttle_ = percent; }
  std::atomic<uint32_t> pace_us{200};       ///< sleep after each pass
  std::atomic<uint32_t> chunk_delay_us{0};  ///< sleep after every 64 pages

 private:
  void stop_thread() {
    std::thread t;
    {
      std::lock_guard lock(mutex_);
      if (!running_) return;
      quit_ = true;
      running_ = false;
      t = std::move(thread_);
    }
    t.join();
  }
  void loop() {
    constexpr uint64_t kChunk = 64;
    while (!quit_) {
      // A paused guest resumes where it stopped (as a vCPU does), not with
      // a new pass from page 0: that would leave three counter values.
      for (uint64_t& first = cursor_; first < pages_ && !quit_; first += kChunk) {
        const auto t0 = Clock::now();
        for (uint64_t p = first; p < std::min(pages_, first + kChunk); ++p) {
          auto page = memory_.host_span(p * 4096, 4);
          uint32_t v;
          std::memcpy(&v, page->data(), 4);
          ++v;
          std::memcpy(page->data(), &v, 4);
          memory_.mark_dirty(p * 4096, 4);
        }
        if (chunk_delay_us > 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(chunk_delay_us.load()));
        }
        // Throttling takes t% of the run time away, as time slicing KVM_RUN would.
        const uint32_t t = throttle_;
        if (t > 0) std::this_thread::sleep_for((Clock::now() - t0) * t / (100 - t));
      }
      if (cursor_ < pages_) break;  // paused mid-pass
      cursor_ = 0;
      ++passes_;
      std::this_thread::sleep_for(std::chrono::microseconds(pace_us.load()));
    }
  }

  GuestMemory& memory_;
  const uint64_t pages_;
  mutable std::mutex mutex_;
  bool running_ = false;
  std::atomic<bool> quit_{false};
  std::atomic<uint64_t> passes_{0};
  std::atomic<uint32_t> throttle_{0};
  uint64_t cursor_ = 0;  ///< next page to write; only the dirtier thread uses it
  std::thread thread_;
};

/// The a-b invariant over the first `pages` counters: all equal k or k-1
/// with at most one boundary (k first). Returns "" or what is wrong.
inline std::string ab_check(GuestMemory& memory, uint64_t pages) {
  std::vector<uint32_t> c(pages);
  for (uint64_t p = 0; p < pages; ++p) std::memcpy(&c[p], memory.host_span(p * 4096, 4)->data(), 4);
  const uint32_t k = c[0];
  bool boundary = false;
  for (uint64_t p = 1; p < pages; ++p) {
    if (c[p] == k && !boundary) continue;
    if (c[p] + 1 == k) {
      boundary = true;
      continue;
    }
    return "page " + std::to_string(p) + " holds " + std::to_string(c[p]) + ", page 0 holds " +
           std::to_string(k);
  }
  return "";
}

// --------------------------------------------------------------------------
// a device with stop-copy data only (R13, R14)

class StopCopyDevice final : public Migratable {
 public:
  explicit StopCopyDevice(std::vector<uint8_t> blob) : blob_(std::move(blob)) {}
  [[nodiscard]] SectionKey key() const override { return {"testdev", 0}; }
  [[nodiscard]] uint32_t version() const override { return 2; }
  [[nodiscard]] uint32_t min_version() const override { return 1; }
  Result<PendingData> pending(PendingQuery) override {
    PendingData d;
    d.stopcopy_bytes = blob_.size();
    return d;
  }
  Result<bool> save_iterate(SectionWriter&) override {
    return fail("testdev has no precopy data: save_iterate must not be called");
  }
  Result<void> save_complete(SectionWriter& out) override {
    out.bytes(blob_);
    return {};
  }
  Result<void> load(SectionReader& in, uint32_t) override {
    if (fail_load) return fail("testdev: injected load failure");
    blob_ = TRY(in.bytes());
    TRY_VOID(in.expect_end());
    loaded = true;
    return {};
  }
  Result<void> cleanup(bool) override { return {}; }

  std::vector<uint8_t> blob_;
  bool loaded = false;
  bool fail_load = false;
};

class NoDirtyPages final : public DirtyPageSource {
 public:
  Result<void> collect(snapshot::PageSet&) override { return {}; }
};

/// Collects the VMM bitmap, where the dirtier marks its writes.
class BitmapDirtyPages final : public DirtyPageSource {
 public:
  explicit BitmapDirtyPages(GuestMemory& memory) : memory_(memory) {}
  Result<void> collect(snapshot::PageSet& pages) override {
    ++collects;
    return pages.take_vmm_dirty(memory_);
  }
  std::atomic<int> collects{0};

 private:
  GuestMemory& memory_;
};

// --------------------------------------------------------------------------
// fake VMs

inline wire::VmDescription describe(const GuestMemory& memory,
                                    const std::vector<Migratable*>& parts, uint32_t tsc_khz) {
  wire::VmDescription d;
  for (const RegionSpec& r : memory.layout()) d.memory.push_back({r.gpa, r.size});
  d.vcpus = 1;
  d.tsc_khz = tsc_khz;
  for (Migratable* m : parts) d.devices.push_back({m->key(), m->version(), m->min_version()});
  d.godwit_version = "test";
  return d;
}

class FakeSource final : public SourceVm {
 public:
  explicit FakeSource(uint64_t ram = kRamBytes, uint64_t dirty_pages = kDirtyPages)
      : memory(make_memory(ram)),
        dirty(*memory),
        ram_part(*memory, dirty),
        device(std::vector<uint8_t>(5000, 0xA5)),
        guest(*memory, dirty_pages) {
    guest.start();
    // Every dirtier page holds data before a migration starts.
    while (guest.passes() < 2) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  wire::VmDescription describe() override {
    return fake::describe(*memory, {&ram_part, &device}, tsc_khz);
  }
  Result<void> start_dirty_tracking(DirtyTracking mode) override {
    if (mode == DirtyTracking::ring) return fail("dirty ring is not available in this fake");
    ++tracking_starts;
    // Pages dirtied before now are in the first round anyway.
    snapshot::PageSet discard = snapshot::PageSet::for_memory(*memory);
    return discard.take_vmm_dirty(*memory);
  }
  void stop_dirty_tracking() override { ++tracking_stops; }
  std::vector<Migratable*> migratables() override { return {&ram_part, &device}; }
  bool running() override { return guest.running(); }
  Result<void> stop() override {
    if (fail_stop) return fail("injected stop failure");
    guest.pause();
    stop_time = Clock::now();
    return {};
  }
  Result<void> resume() override {
    ++resumes;
    guest.start();
    return {};
  }
  void set_throttle(uint32_t percent) override {
    throttles.push_back(percent);
    guest.set_throttle(percent);
  }

  std::unique_ptr<GuestMemory> memory;
  BitmapDirtyPages dirty;
  RamMigratable ram_part;
  StopCopyDevice device;
  Dirtier guest;
  uint32_t tsc_khz = 2'000'000;
  bool fail_stop = false;
  int tracking_starts = 0;
  int tracking_stops = 0;
  int resumes = 0;
  std::vector<uint32_t> throttles;
  Clock::time_point stop_time;
};

class FakeDestination final : public DestinationVm {
 public:
  explicit FakeDestination(uint64_t ram = kRamBytes)
      : memory(make_memory(ram)), ram_part(*memory, no_dirty), device({}) {}
  wire::VmDescription describe() override {
    return fake::describe(*memory, {&ram_part, &device}, tsc_khz);
  }
  std::vector<Migratable*> migratables() override { return {&ram_part, &device}; }
  Result<void> finish_load() override {
    if (on_finish_load) return on_finish_load();
    if (!device.loaded) return fail("testdev state never arrived");
    return {};
  }
  GuestMemory* ram() override { return memory.get(); }
  Result<void> start() override {
    started = true;
    start_time = Clock::now();
    return {};
  }

  std::unique_ptr<GuestMemory> memory;
  NoDirtyPages no_dirty;
  RamMigratable ram_part;
  StopCopyDevice device;
  uint32_t tsc_khz = 2'000'000;
  std::function<Result<void>()> on_finish_load;
  std::atomic<bool> started{false};
  Clock::time_point start_time;
};

}  // namespace godwit::migration::fake
