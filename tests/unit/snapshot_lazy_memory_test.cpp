// LazyMemoryLoader (lazy restore through userfaultfd), without KVM: threads
// of this process play the vCPUs. Faults alone serve exact bytes of a
// base + diff chain; the prefetcher completes the image with every chunk
// filled exactly once while readers race it; a sparse > 3 GiB two-region
// layout works and zero chunks allocate nothing in the memfd; a corrupted
// chunk is reported (naming it) before anyone touching it gets zeros, and
// nobody hangs; teardown mid-prefetch returns. Skips when userfaultfd is not permitted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "snapshot/lazy_memory.h"
#include "snapshot/memory_file.h"
#include "snapshot/memory_load.h"
#include "snapshot/memory_writer.h"
#include "snapshot_test_support.h"

namespace godwit::snapshot {
namespace {

using test::fill_page;
using ::testing::HasSubstr;

constexpr WriteOptions kFast{.hash_threads = 2, .sync = false};
// Only a guard against hangs (a broken loader blocks a thread forever); no
// test depends on how fast anything is.
constexpr auto kHangGuard = std::chrono::seconds(120);

#define GODWIT_REQUIRE_USERFAULTFD()                                                    \
  do {                                                                                  \
    auto uffd_ok = LazyMemoryLoader::userfaultfd_available();                           \
    if (!uffd_ok && (uffd_ok.error().code == EPERM || uffd_ok.error().code == ENOSYS))  \
      GTEST_SKIP() << "userfaultfd is not permitted here: " << uffd_ok.error().message; \
    ASSERT_TRUE(uffd_ok) << uffd_ok.error().message;                                    \
  } while (0)

// Runs `fn` on its own thread. must_finish() is the hang guard: a thread
// still blocked after kHangGuard aborts the test binary with a message (a
// hung fault cannot be cancelled, and a hung test run helps nobody).
class GuardedThread {
 public:
  explicit GuardedThread(std::function<void()> fn)
      : thread_([this, fn = std::move(fn)] {
          fn();
          std::lock_guard lock(mu_);
          done_ = true;
          cv_.notify_all();
        }) {}
  ~GuardedThread() { thread_.join(); }
  void must_finish(const char* what) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, kHangGuard, [&] { return done_; })) return;
    std::fprintf(stderr, "HANG: %s (still blocked after %lld s)\n", what,
                 static_cast<long long>(kHangGuard.count()));
    std::abort();
  }
  [[nodiscard]] bool finished() {
    std::lock_guard lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Records what on_error was called with.
struct ErrorLog {
  std::mutex mu;
  std::vector<std::string> messages;
  LazyMemoryLoader::ErrorCallback callback() {
    return [this](const Error& e) {
      std::lock_guard lock(mu);
      messages.push_back(e.message);
    };
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mu);
    return messages;
  }
};

// Reads the page at `gpa` of `dest` through its mapping (this faults when
// the page is missing) and compares it with `source`.
bool page_matches(const GuestMemory& dest, const GuestMemory& source, uint64_t gpa) {
  auto d = dest.host_span(gpa, kPageSize);
  auto s = source.host_span(gpa, kPageSize);
  return d && s && std::memcmp(d->data(), s->data(), kPageSize) == 0;
}

// `threads` threads each compare `pages` random pages of dest with source
// (all RAM, or only [0, below) when `below` is set); returns the mismatches.
uint64_t random_reads(const GuestMemory& dest, const GuestMemory& source, unsigned threads,
                      unsigned pages, uint64_t below = 0) {
  std::atomic<uint64_t> mismatches{0};
  std::vector<std::unique_ptr<GuardedThread>> readers;
  for (unsigned t = 0; t < threads; ++t)
    readers.push_back(std::make_unique<GuardedThread>([&, t] {
      std::mt19937_64 rng(1234 + t);
      for (unsigned i = 0; i < pages; ++i) {
        const MemoryRegion& r = dest.regions()[below ? 0 : rng() % dest.regions().size()];
        uint64_t span = below ? below : r.size;
        uint64_t gpa = r.gpa + (rng() % (span / kPageSize)) * kPageSize;
        if (!page_matches(dest, source, gpa)) mismatches.fetch_add(1);
      }
    }));
  for (auto& r : readers) r->must_finish("a reader hung on a fault");
  return mismatches.load();
}

uint64_t memfd_allocated(const GuestMemory& memory) {
  uint64_t bytes = 0;
  for (const MemoryRegion& r : memory.regions()) {
    struct stat st {};
    EXPECT_EQ(::fstat(r.fd, &st), 0);
    bytes += uint64_t(st.st_blocks) * 512;
  }
  return bytes;
}

// A 64 MiB source with dense, sparse and all-zero chunks, a full snapshot and
// a diff on top (rewritten pages, erased pages, data in a chunk that was zero).
class LazyRestore : public ::testing::TestWithParam<MemoryBacking> {
 protected:
  static constexpr uint64_t kSize = 64 * kMiB;

  void SetUp() override {
    GODWIT_REQUIRE_USERFAULTFD();
    source_ = test::make_guest_memory(kSize, MemoryBacking::memfd);
    ASSERT_TRUE(source_);
    for (uint64_t gpa = 0; gpa < 2 * kMiB; gpa += kPageSize) fill_page(*source_, gpa, 1);
    for (uint64_t gpa = 2 * kMiB; gpa < 20 * kMiB; gpa += 3 * kPageSize)
      fill_page(*source_, gpa, 2);
    // [20, 24) MiB stays zero in the base.
    for (uint64_t gpa = 24 * kMiB; gpa < kSize; gpa += 7 * kPageSize) fill_page(*source_, gpa, 3);
    fill_page(*source_, kSize - kPageSize, 4);
    auto base = write_full_memory(*source_, dir_.file("base"), kFast);
    ASSERT_TRUE(base) << base.error().message;

    PageSet diff = PageSet::for_memory(*source_);
    auto change = [&](uint64_t gpa, uint32_t seed) {
      fill_page(*source_, gpa, seed);
      ASSERT_TRUE(diff.add_range(gpa, kPageSize));
    };
    for (uint64_t gpa = 1 * kMiB; gpa < 5 * kMiB; gpa += 2 * kPageSize) change(gpa, 10);
    for (uint64_t gpa = 22 * kMiB; gpa < 22 * kMiB + 64 * kPageSize; gpa += kPageSize)
      change(gpa, 11);
    for (uint64_t gpa = 24 * kMiB; gpa < 26 * kMiB; gpa += 7 * kPageSize) {
      test::zero_page(*source_, gpa);
      ASSERT_TRUE(diff.add_range(gpa, kPageSize));
    }
    auto d1 = write_diff_memory(*source_, diff, dir_.file("d1"), base->id, kFast);
    ASSERT_TRUE(d1) << d1.error().message;
    chain_ = {dir_.file("base"), dir_.file("d1")};
  }

  // A fresh destination full of garbage (the loader must empty it).
  std::unique_ptr<GuestMemory> dirty_destination() {
    auto dest = test::make_guest_memory(kSize, GetParam());
    if (dest) test::fill_all(*dest, 0xA5);
    return dest;
  }

  std::unique_ptr<LazyMemoryLoader> start(GuestMemory& dest, const LazyOptions& options,
                                          ErrorLog& errors) {
    auto image = MemoryImage::open(chain_);
    EXPECT_TRUE(image) << image.error().message;
    if (!image) return nullptr;
    auto loader = LazyMemoryLoader::start(std::move(*image), dest, options, errors.callback());
    EXPECT_TRUE(loader) << loader.error().message;
    return loader ? std::move(*loader) : nullptr;
  }

  test::ScratchDir dir_{"lazy"};
  std::unique_ptr<GuestMemory> source_;
  std::vector<std::string> chain_;
};

TEST_P(LazyRestore, FaultsAloneServeTheExactBytesOfTheChain) {
  auto dest = dirty_destination();
  ASSERT_TRUE(dest);
  ErrorLog errors;
  auto loader = start(*dest, {.prefetch = false, .prefetch_threads = 1}, errors);
  ASSERT_TRUE(loader);
  EXPECT_EQ(random_reads(*dest, *source_, 4, 300, kSize / 2), 0u);
  // The pages the diff changed, erased, and wrote into a zero chunk.
  for (uint64_t gpa :
       {1 * kMiB, 22 * kMiB + 5 * kPageSize, 24 * kMiB, 21 * kMiB, kSize - kPageSize})
    EXPECT_TRUE(page_matches(*dest, *source_, gpa)) << "gpa 0x" << std::hex << gpa;
  LazyStats s = loader->stats();
  EXPECT_GT(s.faults, 0u);
  EXPECT_GT(s.chunks_on_fault, 0u);
  // Only chunks 0-15 (random reads), 11, 12 and 31 were touched.
  EXPECT_LE(s.chunks_on_fault, 17u);
  EXPECT_EQ(s.chunks_prefetched, 0u);
  EXPECT_FALSE(s.complete);
  EXPECT_TRUE(errors.seen().empty());
  // Destroying a loader that is not complete returns; the rest reads zero.
  loader.reset();
  EXPECT_TRUE(errors.seen().empty());
}

TEST_P(LazyRestore, PrefetchCompletesWithEveryChunkFilledExactlyOnceWhileReadersRace) {
  for (unsigned threads : {1u, 2u}) {
    SCOPED_TRACE(std::to_string(threads) + " prefetch threads");
    auto dest = dirty_destination();
    ASSERT_TRUE(dest);
    ErrorLog errors;
    auto loader = start(*dest, {.prefetch = true, .prefetch_threads = threads}, errors);
    ASSERT_TRUE(loader);
    EXPECT_EQ(random_reads(*dest, *source_, 3, 200), 0u);
    Result<void> waited;
    GuardedThread waiter([&] { waited = loader->wait(); });
    waiter.must_finish("wait() hung");
    EXPECT_TRUE(waited) << waited.error().message;
    LazyStats s = loader->stats();
    EXPECT_TRUE(s.complete);
    EXPECT_EQ(s.chunks_on_fault + s.chunks_prefetched, kSize / kChunkBytes);
    EXPECT_TRUE(test::memory_equal(*source_, *dest));
    EXPECT_TRUE(errors.seen().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Backings, LazyRestore,
                         ::testing::Values(MemoryBacking::memfd, MemoryBacking::anonymous),
                         [](const auto& info) { return std::string(backing_name(info.param)); });

TEST(LazyRestoreLayout, MismatchedLayoutFailsBeforeTouchingGuestMemory) {
  GODWIT_REQUIRE_USERFAULTFD();
  test::ScratchDir dir("lazy-layout");
  auto source = test::make_guest_memory(16 * kMiB);
  auto dest = test::make_guest_memory(32 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(source && dest);
  ASSERT_TRUE(write_full_memory(*source, dir.file("mem"), kFast));
  test::fill_all(*dest, 0xA5);
  const std::string chain[] = {dir.file("mem")};
  auto image = MemoryImage::open(chain);
  ASSERT_TRUE(image) << image.error().message;
  auto loader = LazyMemoryLoader::start(std::move(*image), *dest, {}, {});
  ASSERT_FALSE(loader);
  EXPECT_THAT(loader.error().message, HasSubstr("destination guest memory is"));
  EXPECT_EQ(*dest->read_obj<uint8_t>(0), 0xA5);
  EXPECT_EQ(*dest->read_obj<uint8_t>(32 * kMiB - 1), 0xA5);
}

TEST(LazyRestoreSparse, TwoRegionsAbove3GiBLoadOnlyTheirDataAndZeroChunksAllocateNothing) {
  GODWIT_REQUIRE_USERFAULTFD();
  test::ScratchDir dir("lazy-high");
  uint64_t size = 3 * kGiB + 64 * kMiB;  // [0, 3 GiB) + [4 GiB, 4 GiB + 64 MiB)
  auto source = test::make_guest_memory(size, MemoryBacking::memfd);
  ASSERT_TRUE(source);
  ASSERT_EQ(source->regions().size(), 2u);
  std::vector<uint64_t> touched = {0,
                                   kLowRamEnd - kPageSize,
                                   kHighRamStart,
                                   kHighRamStart + 33 * kMiB + 5 * kPageSize,
                                   kHighRamStart + 64 * kMiB - kPageSize,
                                   1 * kGiB + 12345 * kPageSize};
  for (size_t i = 0; i < touched.size(); ++i) fill_page(*source, touched[i], uint32_t(i));
  ASSERT_TRUE(write_full_memory(*source, dir.file("mem"), kFast));
  const std::string chain[] = {dir.file("mem")};
  const std::vector<uint64_t> zero_pages = {kPageSize, 2 * kGiB, kHighRamStart + kPageSize};

  {
    SCOPED_TRACE("faults only");
    auto dest = test::make_guest_memory(size, MemoryBacking::memfd);
    ASSERT_TRUE(dest);
    auto image = MemoryImage::open(chain);
    ASSERT_TRUE(image) << image.error().message;
    ErrorLog errors;
    auto loader =
        LazyMemoryLoader::start(std::move(*image), *dest, {.prefetch = false}, errors.callback());
    ASSERT_TRUE(loader) << loader.error().message;
    GuardedThread reader([&] {
      for (uint64_t gpa : touched) EXPECT_TRUE(page_matches(*dest, *source, gpa)) << gpa;
      for (uint64_t gpa : zero_pages) EXPECT_EQ(*dest->read_obj<uint64_t>(gpa), 0u) << gpa;
    });
    reader.must_finish("reader");
    EXPECT_GE((*loader)->stats().faults, touched.size());
    EXPECT_TRUE(errors.seen().empty());
  }
  {
    SCOPED_TRACE("prefetch");
    auto dest = test::make_guest_memory(size, MemoryBacking::memfd);
    ASSERT_TRUE(dest);
    auto image = MemoryImage::open(chain);
    ASSERT_TRUE(image) << image.error().message;
    ErrorLog errors;
    auto loader = LazyMemoryLoader::start(std::move(*image), *dest, {}, errors.callback());
    ASSERT_TRUE(loader) << loader.error().message;
    Result<void> waited;
    GuardedThread waiter([&] { waited = (*loader)->wait(); });
    waiter.must_finish("wait() hung");
    EXPECT_TRUE(waited) << waited.error().message;
    EXPECT_TRUE((*loader)->stats().complete);
    // Only the data pages are allocated: the zero runs stayed holes.
    EXPECT_EQ(memfd_allocated(*dest), touched.size() * kPageSize);
    for (uint64_t gpa : touched) EXPECT_TRUE(page_matches(*dest, *source, gpa)) << gpa;
    for (uint64_t gpa : zero_pages) EXPECT_EQ(*dest->read_obj<uint64_t>(gpa), 0u) << gpa;
  }
}

TEST(LazyRestoreSparse, ZeroChunksOfAPrefetchedImageDoNotAllocateMemfdBlocks) {
  GODWIT_REQUIRE_USERFAULTFD();
  test::ScratchDir dir("lazy-zero");
  auto source = test::make_guest_memory(256 * kMiB, MemoryBacking::memfd);
  auto dest = test::make_guest_memory(256 * kMiB, MemoryBacking::memfd);
  ASSERT_TRUE(source && dest);
  for (uint64_t gpa : {uint64_t{0}, 100 * kMiB, 255 * kMiB}) fill_page(*source, gpa, 5);
  ASSERT_TRUE(write_full_memory(*source, dir.file("mem"), kFast));
  test::fill_all(*dest, 0xA5);  // fully allocated before the restore
  ASSERT_EQ(memfd_allocated(*dest), 256 * kMiB);
  const std::string chain[] = {dir.file("mem")};
  auto image = MemoryImage::open(chain);
  ASSERT_TRUE(image) << image.error().message;
  auto loader = LazyMemoryLoader::start(std::move(*image), *dest, {}, {});
  ASSERT_TRUE(loader) << loader.error().message;
  Result<void> waited;
  GuardedThread waiter([&] { waited = (*loader)->wait(); });
  waiter.must_finish("wait() hung");
  EXPECT_TRUE(waited) << waited.error().message;
  EXPECT_EQ(memfd_allocated(*dest), 3 * kPageSize);
  EXPECT_EQ((*loader)->stats().chunks_prefetched, 128u);
}

class LazyRestoreCorruption : public ::testing::Test {
 protected:
  static constexpr uint64_t kSize = 16 * kMiB;
  static constexpr size_t kBadChunk = 2;  // [4, 6) MiB

  void SetUp() override {
    GODWIT_REQUIRE_USERFAULTFD();
    source_ = test::make_guest_memory(kSize);
    ASSERT_TRUE(source_);
    for (uint64_t gpa = 0; gpa < kSize; gpa += 5 * kPageSize) fill_page(*source_, gpa, 7);
    ASSERT_TRUE(write_full_memory(*source_, dir_.file("mem"), kFast));
    auto file = MemoryFile::open(dir_.file("mem"));
    ASSERT_TRUE(file) << file.error().message;
    test::flip_bit(dir_.file("mem"), file->chunk(kBadChunk).data_offset + 100, 3);
  }

  std::unique_ptr<LazyMemoryLoader> start(GuestMemory& dest, const LazyOptions& options) {
    const std::string chain[] = {dir_.file("mem")};
    auto image = MemoryImage::open(chain);  // metadata is intact: opens fine
    EXPECT_TRUE(image) << image.error().message;
    if (!image) return nullptr;
    auto loader = LazyMemoryLoader::start(std::move(*image), dest, options, errors_.callback());
    EXPECT_TRUE(loader) << loader.error().message;
    return loader ? std::move(*loader) : nullptr;
  }

  test::ScratchDir dir_{"lazy-corrupt"};
  std::unique_ptr<GuestMemory> source_;
  ErrorLog errors_;
};

TEST_F(LazyRestoreCorruption, FaultOnABadChunkIsReportedFirstThenAnsweredWithZeros) {
  auto dest = test::make_guest_memory(kSize, MemoryBacking::memfd);
  ASSERT_TRUE(dest);
  auto loader = start(*dest, {.prefetch = false});
  ASSERT_TRUE(loader);
  uint64_t bad_gpa = kBadChunk * kChunkBytes + kPageSize;  // a data page (page 1025)
  std::atomic<uint64_t> bad_value{1};
  std::atomic<size_t> errors_when_answered{0};
  GuardedThread toucher([&] {
    bad_value = *dest->read_obj<uint64_t>(bad_gpa);
    errors_when_answered = errors_.seen().size();
  });

  Result<void> waited;
  GuardedThread waiter([&] { waited = loader->wait(); });
  waiter.must_finish("wait() hung");
  ASSERT_FALSE(waited);
  EXPECT_THAT(waited.error().message, HasSubstr("chunk 2 (region 0"));
  EXPECT_THAT(waited.error().message, HasSubstr("checksum mismatch"));
  auto seen = errors_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], waited.error().message);

  // The touching thread is not left blocked: it gets zeros, never the
  // unverified bytes, and only after on_error (the VMM's stop) returned.
  toucher.must_finish("the touching thread stayed blocked");
  EXPECT_EQ(bad_value.load(), 0u);
  EXPECT_EQ(errors_when_answered.load(), 1u);
  // Other chunks are still served after the error.
  GuardedThread good(
      [&] { EXPECT_TRUE(page_matches(*dest, *source_, 7 * kChunkBytes + kPageSize)); });
  good.must_finish("reader");
  EXPECT_FALSE(loader->stats().complete);
  loader.reset();
  EXPECT_EQ(errors_.seen().size(), 1u);
}

TEST_F(LazyRestoreCorruption, PrefetcherReportsTheBadChunkOnceAndTeardownReturns) {
  auto dest = test::make_guest_memory(kSize, MemoryBacking::anonymous);
  ASSERT_TRUE(dest);
  auto loader = start(*dest, {.prefetch = true, .prefetch_threads = 2});
  ASSERT_TRUE(loader);
  Result<void> waited;
  GuardedThread waiter([&] { waited = loader->wait(); });
  waiter.must_finish("wait() hung");
  ASSERT_FALSE(waited);
  EXPECT_THAT(waited.error().message, HasSubstr("chunk 2"));
  EXPECT_FALSE(loader->stats().complete);
  GuardedThread teardown([&] { loader.reset(); });
  teardown.must_finish("the destructor hung");
  EXPECT_EQ(errors_.seen().size(), 1u);
}

TEST(LazyRestoreTeardown, DestroyingMidPrefetchWithActiveReadersReturns) {
  GODWIT_REQUIRE_USERFAULTFD();
  test::ScratchDir dir("lazy-teardown");
  constexpr uint64_t kSize = 256 * kMiB;
  auto source = test::make_guest_memory(kSize, MemoryBacking::memfd);
  auto dest = test::make_guest_memory(kSize, MemoryBacking::memfd);
  ASSERT_TRUE(source && dest);
  for (uint64_t gpa = 0; gpa < kSize; gpa += kPageSize) fill_page(*source, gpa, 9);
  ASSERT_TRUE(write_full_memory(*source, dir.file("mem"), kFast));
  const std::string chain[] = {dir.file("mem")};
  auto image = MemoryImage::open(chain);
  ASSERT_TRUE(image) << image.error().message;
  auto loader = LazyMemoryLoader::start(std::move(*image), *dest, {}, {});
  ASSERT_TRUE(loader) << loader.error().message;

  // Readers keep faulting (from the top of RAM, ahead of the prefetcher)
  // while the loader is destroyed; none may stay blocked.
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<GuardedThread>> readers;
  for (int t = 0; t < 2; ++t)
    readers.push_back(std::make_unique<GuardedThread>([&, t] {
      std::mt19937_64 rng(t);
      while (!stop) (void)*dest->read_obj<uint64_t>(kSize / 2 + (rng() % (kSize / 2)));
    }));
  GuardedThread teardown([&] { loader->reset(); });
  teardown.must_finish("the destructor hung");
  stop = true;
  for (auto& r : readers) r->must_finish("a reader stayed blocked");
}

// Not a test: prints start() -> wait() for a 1 GiB image, 90% non-zero, when
// GODWIT_LAZY_MEASURE=1 (benchmarks never assert timings).
TEST(LazyRestoreMeasure, OneGiBNinetyPercentFull) {
  if (!std::getenv("GODWIT_LAZY_MEASURE")) GTEST_SKIP() << "set GODWIT_LAZY_MEASURE=1 to measure";
  GODWIT_REQUIRE_USERFAULTFD();
  test::ScratchDir dir("lazy-measure");
  auto source = test::make_guest_memory(1 * kGiB, MemoryBacking::memfd);
  ASSERT_TRUE(source);
  for (uint64_t i = 0; i < kGiB / kPageSize; ++i)
    if (i % 10 != 9) fill_page(*source, i * kPageSize, 1);
  ASSERT_TRUE(write_full_memory(*source, dir.file("mem"), kFast));
  const std::string chain[] = {dir.file("mem")};
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  for (unsigned threads : {1u, 2u}) {
    auto dest = test::make_guest_memory(1 * kGiB, MemoryBacking::memfd);
    ASSERT_TRUE(dest);
    auto image = MemoryImage::open(chain);
    ASSERT_TRUE(image);
    auto t0 = Clock::now();
    auto loader = LazyMemoryLoader::start(std::move(*image), *dest,
                                          {.prefetch = true, .prefetch_threads = threads}, {});
    ASSERT_TRUE(loader) << loader.error().message;
    double started = seconds(t0);
    ASSERT_TRUE((*loader)->wait());
    std::printf(
        "{\"lazy_restore_1gib_90pct\": {\"prefetch_threads\": %u, \"start_s\": %.4f, "
        "\"complete_s\": %.3f}}\n",
        threads, started, seconds(t0));
    EXPECT_TRUE(test::memory_equal(*source, *dest));
  }
  auto dest = test::make_guest_memory(1 * kGiB, MemoryBacking::memfd);
  ASSERT_TRUE(dest);
  auto t0 = Clock::now();
  ASSERT_TRUE(load_memory(chain, *dest, {.threads = 2, .verify_first = false}));
  std::printf("{\"eager_load_1gib_90pct\": {\"threads\": 2, \"s\": %.3f}}\n", seconds(t0));
}

}  // namespace
}  // namespace godwit::snapshot
