// RamMigratable without KVM: a fake DirtyPageSource stands in for the KVM
// dirty log, tests write "guest" pages straight into the mapping (as a vCPU
// would, invisible to the VMM bitmap) and tell the fake. Covers the first
// round (zero pages skipped, memfd holes never allocated, > 3 GiB layouts),
// precopy with writes between rounds, zero runs for pages cleared after they
// were sent, pending() per query kind (R11, R12, R19, R21), the per-call
// limits, the loader's refusals, the state stream round trip and golden bytes.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "migration/ram_migratable.h"
#include "migration/state_stream.h"
#include "test_util.h"

namespace godwit::migration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

/// The test's stand-in for KVM_GET_DIRTY_LOG + the VMM bitmap: reports the
/// pages the test marked, and counts the collects.
class FakeDirtySource final : public DirtyPageSource {
 public:
  void mark(uint64_t gpa) { marked_.push_back(gpa); }
  Result<void> collect(snapshot::PageSet& pages) override {
    ++calls;
    if (fail_next) {
      fail_next = false;
      return fail("KVM_GET_DIRTY_LOG slot 0: Bad address");
    }
    for (uint64_t gpa : marked_) TRY_VOID(pages.add_range(gpa, kPageSize));
    marked_.clear();
    return {};
  }
  int calls = 0;
  bool fail_next = false;

 private:
  std::vector<uint64_t> marked_;
};

const char* backing_label(MemoryBacking b) {
  return b == MemoryBacking::memfd ? "memfd" : "anonymous";
}

/// Writes the page at `gpa` the way a vCPU does: straight into the mapping,
/// so the VMM dirty bitmap does not see it. Never all zero for any seed.
void guest_fill(GuestMemory& memory, uint64_t gpa, uint8_t seed) {
  auto page = memory.host_span(gpa, kPageSize);
  ASSERT_TRUE(page) << page.error().message;
  for (size_t i = 0; i < kPageSize; ++i) (*page)[i] = static_cast<uint8_t>(seed + i * 7 + 1);
  (*page)[0] = seed | 1;
}

void guest_zero(GuestMemory& memory, uint64_t gpa) {
  auto page = memory.host_span(gpa, kPageSize);
  ASSERT_TRUE(page) << page.error().message;
  std::memset(page->data(), 0, kPageSize);
}

/// Reads RAM without faulting in memfd holes (pread of a hole returns zeros
/// without allocating); anonymous RAM is read through the mapping.
void read_ram(const MemoryRegion& r, uint64_t offset, std::span<uint8_t> out) {
  if (r.fd >= 0) {
    ASSERT_EQ(::pread(r.fd, out.data(), out.size(), static_cast<off_t>(r.fd_offset + offset)),
              static_cast<ssize_t>(out.size()));
  } else {
    std::memcpy(out.data(), r.host + offset, out.size());
  }
}

/// True when no page of [host, host + len) of a private anonymous mapping was
/// ever populated (pagemap: neither present nor swapped), so all of it reads
/// as zero. Lets the comparison below skip gigabytes of untouched RAM
/// without faulting in a zero-page mapping per page.
bool anonymous_unpopulated(const uint8_t* host, uint64_t len) {
  static const int pagemap = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return false;
  std::vector<uint64_t> entries(len / kPageSize);
  auto vpn = reinterpret_cast<uintptr_t>(host) / kPageSize;
  auto want = static_cast<ssize_t>(entries.size() * 8);
  if (::pread(pagemap, entries.data(), entries.size() * 8, static_cast<off_t>(vpn * 8)) != want)
    return false;
  return std::all_of(entries.begin(), entries.end(),
                     [](uint64_t e) { return (e & (uint64_t{3} << 62)) == 0; });
}

/// The first gpa where the two memories differ, or nullopt when equal.
std::optional<uint64_t> first_difference(const GuestMemory& a, const GuestMemory& b) {
  EXPECT_EQ(a.regions().size(), b.regions().size());
  std::vector<uint8_t> x(kMiB), y(kMiB);
  for (size_t i = 0; i < a.regions().size(); ++i) {
    const MemoryRegion& ra = a.regions()[i];
    const MemoryRegion& rb = b.regions()[i];
    EXPECT_EQ(ra.gpa, rb.gpa);
    EXPECT_EQ(ra.size, rb.size);
    for (uint64_t off = 0; off < ra.size; off += x.size()) {
      uint64_t n = std::min<uint64_t>(x.size(), ra.size - off);
      if (ra.fd < 0 && rb.fd < 0 && anonymous_unpopulated(ra.host + off, n) &&
          anonymous_unpopulated(rb.host + off, n))
        continue;  // both all zero
      read_ram(ra, off, {x.data(), n});
      read_ram(rb, off, {y.data(), n});
      if (std::memcmp(x.data(), y.data(), n) != 0) {
        auto at = std::mismatch(x.begin(), x.begin() + static_cast<ptrdiff_t>(n), y.begin());
        return ra.gpa + off + static_cast<uint64_t>(at.first - x.begin());
      }
    }
  }
  return std::nullopt;
}

std::string describe(std::optional<uint64_t> diff) {
  if (!diff) return "equal";
  char buf[40];
  std::snprintf(buf, sizeof buf, "differ at gpa 0x%llx", static_cast<unsigned long long>(*diff));
  return buf;
}

bool page_is_zero(const GuestMemory& memory, uint64_t gpa) {
  std::vector<uint8_t> page(kPageSize);
  EXPECT_TRUE(memory.read(gpa, page));
  return std::all_of(page.begin(), page.end(), [](uint8_t b) { return b == 0; });
}

/// Bytes of the backing file actually allocated (memfd only).
uint64_t allocated_bytes(const GuestMemory& memory) {
  uint64_t total = 0;
  for (const MemoryRegion& r : memory.regions()) {
    struct stat st {};
    EXPECT_EQ(::fstat(r.fd, &st), 0);
    total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

std::string message(const auto& result) {
  return result ? std::string("(succeeded)") : result.error().message;
}

/// Loads `payload` (version 1) into `ram` through a reader named ram[0].
Result<void> load_payload(RamMigratable& ram, std::span<const uint8_t> payload,
                          uint32_t version = 1) {
  SectionReader in("ram[0]", payload);
  return ram.load(in, version);
}

/// One save_iterate() into `dst`; returns done. Records the payload size.
bool iterate_into(RamMigratable& src, RamMigratable& dst, uint64_t* payload_bytes = nullptr) {
  SectionWriter out;
  auto done = src.save_iterate(out);
  EXPECT_TRUE(done) << done.error().message;
  if (payload_bytes != nullptr) *payload_bytes = out.size();
  auto loaded = load_payload(dst, out.data());
  EXPECT_TRUE(loaded) << loaded.error().message;
  return done && *done;
}

/// Final query, then save_complete() into `dst`.
void complete_into(RamMigratable& src, RamMigratable& dst) {
  auto final_query = src.pending(PendingQuery::final);
  ASSERT_TRUE(final_query) << final_query.error().message;
  SectionWriter out;
  auto complete = src.save_complete(out);
  ASSERT_TRUE(complete) << complete.error().message;
  auto loaded = load_payload(dst, out.data());
  ASSERT_TRUE(loaded) << loaded.error().message;
}

class RamMigration : public ::testing::TestWithParam<MemoryBacking> {
 protected:
  std::unique_ptr<GuestMemory> memory(uint64_t size) {
    return test::make_guest_memory(size, GetParam());
  }
};

TEST_P(RamMigration, FirstRoundCopiesEveryNonZeroPageAndSkipsZeroPages) {
  auto src_mem = memory(kMiB);
  auto dst_mem = memory(kMiB);
  ASSERT_TRUE(src_mem && dst_mem);
  // A run of three pages, two single pages, the first and the last page.
  for (uint64_t page : {0, 10, 11, 12, 40, 100, 255}) guest_fill(*src_mem, page * kPageSize, 3);
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty), dst(*dst_mem, unused);

  uint64_t bytes = 0;
  EXPECT_TRUE(iterate_into(src, dst, &bytes)) << "1 MiB fits the default 4 MiB per call";
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
  EXPECT_EQ(src.stats().data_pages, 7u);
  EXPECT_EQ(src.stats().skipped_zero_pages, 256u - 7u)
      << "zero pages of the first round are skipped";
  EXPECT_EQ(src.stats().zero_pages, 0u);
  // 5 runs (0, 10-12, 40, 100, 255): count + 5 headers + 7 pages.
  EXPECT_EQ(bytes, 4 + 5 * RamMigratable::kRunHeaderBytes + 7 * kPageSize);
  EXPECT_EQ(dirty.calls, 0) << "save_iterate never collects";
}

TEST_P(RamMigration, SparseTwoRegionLayoutAboveFourGiBArrivesWhole) {
  // 3 GiB low + 64 MiB above 4 GiB; only a few pages touched.
  const uint64_t size = 3 * kGiB + 64 * kMiB;
  auto src_mem = memory(size);
  auto dst_mem = memory(size);
  ASSERT_TRUE(src_mem && dst_mem);
  ASSERT_EQ(src_mem->regions().size(), 2u);
  const uint64_t touched[] = {0, kMiB + 5 * kPageSize, 3 * kGiB - kPageSize, kHighRamStart,
                              kHighRamStart + 64 * kMiB - kPageSize};
  for (uint64_t gpa : touched) guest_fill(*src_mem, gpa, static_cast<uint8_t>(gpa >> 12));
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty), dst(*dst_mem, unused);

  int calls = 0;
  uint64_t total_payload = 0;
  for (bool done = false; !done; ++calls) {
    ASSERT_LT(calls, 200) << "the first round must end";
    uint64_t bytes = 0;
    done = iterate_into(src, dst, &bytes);
    total_payload += bytes;
  }
  EXPECT_EQ(src.stats().data_pages, std::size(touched));
  EXPECT_LE(total_payload, 4u * calls + std::size(touched) * (kPageSize + 13));
  complete_into(src, dst);
  for (uint64_t gpa : touched) EXPECT_FALSE(page_is_zero(*dst_mem, gpa)) << gpa;
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
  // Unpopulated pages (memfd holes, anonymous pages never faulted in) are
  // known zero without reading, so they cost no scan budget: one call, where
  // reading 3 GiB at 64 MiB per call would take 49.
  EXPECT_EQ(calls, 1);
  if (GetParam() == MemoryBacking::memfd) {
    // And neither side allocated more than the touched pages.
    EXPECT_EQ(allocated_bytes(*src_mem), std::size(touched) * kPageSize);
    EXPECT_EQ(allocated_bytes(*dst_mem), std::size(touched) * kPageSize);
  }
}

TEST_P(RamMigration, PrecopyWithGuestWritesBetweenRoundsConverges) {
  const uint64_t pages = 512;  // 2 MiB
  auto src_mem = memory(pages * kPageSize);
  auto dst_mem = memory(pages * kPageSize);
  ASSERT_TRUE(src_mem && dst_mem);
  for (uint64_t p = 0; p < pages; p += 2) guest_fill(*src_mem, p * kPageSize, 1);
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty, {.max_iterate_bytes = 64 * kPageSize}), dst(*dst_mem, unused);

  uint8_t seed = 10;
  int iterations = 0;
  for (bool converged = false; !converged; ++iterations) {
    ASSERT_LT(iterations, 100) << "precopy must converge once the guest stops writing";
    bool done = iterate_into(src, dst);
    if (iterations < 12) {
      // The guest rewrites pages already sent, pages not sent yet and a page
      // that was zero, between rounds (as it does while the VM runs).
      for (uint64_t p : {uint64_t{0}, 7 * uint64_t(iterations), pages - 1 - iterations, 301ul}) {
        guest_fill(*src_mem, p * kPageSize, ++seed);
        dirty.mark(p * kPageSize);
      }
    }
    if (done) {
      auto exact = src.pending(PendingQuery::exact);
      ASSERT_TRUE(exact) << exact.error().message;
      converged = exact->precopy_bytes == 0;
    }
  }
  // Written after the last round, before the VM stops: only the final
  // collect sees these.
  guest_fill(*src_mem, 5 * kPageSize, 0xee);
  dirty.mark(5 * kPageSize);
  EXPECT_NE(describe(first_difference(*src_mem, *dst_mem)), "equal");
  complete_into(src, dst);
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
}

TEST_P(RamMigration, PageZeroedAfterItWasSentArrivesAsZero) {
  auto src_mem = memory(64 * 1024);
  auto dst_mem = memory(64 * 1024);
  ASSERT_TRUE(src_mem && dst_mem);
  guest_fill(*src_mem, 3 * kPageSize, 9);
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty), dst(*dst_mem, unused);
  ASSERT_TRUE(iterate_into(src, dst));
  ASSERT_FALSE(page_is_zero(*dst_mem, 3 * kPageSize));

  guest_zero(*src_mem, 3 * kPageSize);
  dirty.mark(3 * kPageSize);
  // A page that was zero all along and is dirtied with zeros needs nothing:
  // the destination has zero there already.
  dirty.mark(8 * kPageSize);
  auto final_query = src.pending(PendingQuery::final);
  ASSERT_TRUE(final_query);
  EXPECT_EQ(final_query->stopcopy_bytes, 2 * kPageSize);
  SectionWriter out;
  ASSERT_TRUE(src.save_complete(out));
  // One zero run of one page: count | gpa | pages | kind 0, no data.
  EXPECT_EQ(out.size(), 4 + RamMigratable::kRunHeaderBytes);
  ASSERT_TRUE(load_payload(dst, out.data()));
  EXPECT_TRUE(page_is_zero(*dst_mem, 3 * kPageSize));
  EXPECT_EQ(src.stats().zero_pages, 1u);
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
}

/// One multifd packet's worth through plan_pages() / copy_pages() /
/// load_pages(); returns done.
bool packet_into(RamMigratable& src, RamMigratable& dst, uint64_t max_pages,
                 PagePlan* seen = nullptr) {
  PagePlan plan;
  auto done = src.plan_pages(max_pages, plan);
  EXPECT_TRUE(done) << done.error().message;
  EXPECT_LE(plan.pages(), max_pages);
  std::vector<uint8_t> data(plan.data.size() * kPageSize);
  auto copied = src.copy_pages(plan.data, data);
  EXPECT_TRUE(copied) << copied.error().message;
  auto loaded = dst.load_pages(plan.data, data, plan.zero);
  EXPECT_TRUE(loaded) << loaded.error().message;
  if (seen != nullptr) *seen = plan;
  return done && *done;
}

TEST_P(RamMigration, PagePlansMoveRamLikeSectionsAndRespectThePageLimit) {
  const uint64_t pages = 512;
  auto src_mem = memory(pages * kPageSize);
  auto dst_mem = memory(pages * kPageSize);
  ASSERT_TRUE(src_mem && dst_mem);
  for (uint64_t p = 0; p < pages; p += 3) guest_fill(*src_mem, p * kPageSize, 5);
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty), dst(*dst_mem, unused);

  int calls = 0;
  for (bool done = false; !done; ++calls) {
    ASSERT_LT(calls, 100);
    done = packet_into(src, dst, 16);
  }
  EXPECT_EQ(calls, (171 + 15) / 16) << "171 data pages, 16 a packet";
  EXPECT_EQ(src.stats().data_pages, 171u);
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");

  // A page zeroed after it was sent goes in the zero list; one zero all
  // along is skipped; a rewritten one goes as data.
  guest_zero(*src_mem, 3 * kPageSize);
  guest_fill(*src_mem, 6 * kPageSize, 77);
  for (uint64_t p : {3, 4, 6}) dirty.mark(p * kPageSize);
  ASSERT_TRUE(src.pending(PendingQuery::final));
  PagePlan plan;
  EXPECT_TRUE(packet_into(src, dst, 16, &plan));
  EXPECT_EQ(plan.data, std::vector<uint64_t>{6 * kPageSize});
  EXPECT_EQ(plan.zero, std::vector<uint64_t>{3 * kPageSize});
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
  SectionWriter rest;
  ASSERT_TRUE(src.save_complete(rest));
  EXPECT_EQ(rest.size(), 4u) << "nothing left for stop-and-copy after the drain";
}

TEST(RamMigrationPages, LoadPagesChecksEveryAddressBeforeWritingAny) {
  auto mem = test::make_guest_memory(64 * kPageSize, MemoryBacking::memfd);
  ASSERT_TRUE(mem);
  FakeDirtySource unused;
  RamMigratable dst(*mem, unused);
  std::vector<uint8_t> data(2 * kPageSize, 0xab);
  const std::vector<uint64_t> outside = {0, 64 * kPageSize};
  EXPECT_THAT(message(dst.load_pages(outside, data, {})), HasSubstr("outside guest RAM"));
  EXPECT_TRUE(page_is_zero(*mem, 0)) << "the good page before the bad one was not written";
  const std::vector<uint64_t> misaligned = {kPageSize + 8};
  EXPECT_THAT(message(dst.load_pages({}, {}, misaligned)), HasSubstr("not page aligned"));
  const std::vector<uint64_t> one = {0};
  EXPECT_THAT(message(dst.load_pages(one, data, {})), HasSubstr("1 data pages but 8192 bytes"));
  ASSERT_TRUE(dst.load_pages(std::span(outside).first(1), std::span(data).first(kPageSize), {}));
  EXPECT_FALSE(page_is_zero(*mem, 0));
  ASSERT_TRUE(dst.load_pages({}, {}, one));
  EXPECT_TRUE(page_is_zero(*mem, 0));
}

// R11, R12, R19, R21: estimates never collect, exact and final collect once
// each, save_complete() never; the final query moves RAM to stop-copy bytes.
TEST_P(RamMigration, PendingReportsPerQueryKindAndOnlyExactQueriesCollect) {
  auto src_mem = memory(16 * kPageSize);
  ASSERT_TRUE(src_mem);
  for (uint64_t p = 0; p < 16; ++p) guest_fill(*src_mem, p * kPageSize, 4);
  FakeDirtySource dirty;
  RamMigratable src(*src_mem, dirty, {.max_iterate_bytes = 4 + 13 + 4 * kPageSize});

  auto estimate = src.pending(PendingQuery::estimate);
  ASSERT_TRUE(estimate);
  EXPECT_EQ(*estimate, (PendingData{.precopy_bytes = 16 * kPageSize}));
  SectionWriter first;
  ASSERT_EQ(src.save_iterate(first), false);  // 4 of 16 pages fit
  EXPECT_EQ(src.pending(PendingQuery::estimate)->precopy_bytes, 12 * kPageSize);

  guest_fill(*src_mem, 0, 5);  // a page already sent
  dirty.mark(0);
  EXPECT_EQ(src.pending(PendingQuery::estimate)->precopy_bytes, 12 * kPageSize)
      << "an estimate must not collect";
  EXPECT_EQ(dirty.calls, 0);
  EXPECT_EQ(*src.pending(PendingQuery::exact), (PendingData{.precopy_bytes = 13 * kPageSize}));
  EXPECT_EQ(dirty.calls, 1);

  guest_fill(*src_mem, kPageSize, 6);  // sent too, written just before the stop
  dirty.mark(kPageSize);
  EXPECT_EQ(*src.pending(PendingQuery::final), (PendingData{.stopcopy_bytes = 14 * kPageSize}));
  EXPECT_EQ(dirty.calls, 2);
  EXPECT_EQ(*src.pending(PendingQuery::estimate), (PendingData{.stopcopy_bytes = 14 * kPageSize}))
      << "after the final query the VM is stopped: RAM is stop-copy data";
  SectionWriter rest;
  ASSERT_TRUE(src.save_complete(rest));
  EXPECT_EQ(dirty.calls, 2) << "save_complete must not collect (R21)";
  EXPECT_EQ(*src.pending(PendingQuery::estimate), PendingData{});
  EXPECT_EQ(src.stats().collects, 2u);
}

TEST_P(RamMigration, EveryCallStaysWithinMaxIterateBytesIncludingHeaders) {
  const uint64_t pages = 256;
  auto src_mem = memory(pages * kPageSize);
  auto dst_mem = memory(pages * kPageSize);
  ASSERT_TRUE(src_mem && dst_mem);
  for (uint64_t p = 0; p < pages; ++p) guest_fill(*src_mem, p * kPageSize, 2);
  FakeDirtySource dirty, unused;
  const uint64_t limit = 10 * kPageSize + 100;
  RamMigratable src(*src_mem, dirty, {.max_iterate_bytes = limit}), dst(*dst_mem, unused);

  auto drain = [&](int min_calls) {
    int calls = 0;
    for (bool done = false; !done; ++calls) {
      ASSERT_LT(calls, 1000);
      uint64_t bytes = 0;
      done = iterate_into(src, dst, &bytes);
      EXPECT_LE(bytes, limit) << "call " << calls;
      EXPECT_GT(bytes, 4u) << "every call makes progress";
    }
    EXPECT_GE(calls, min_calls);
  };
  drain(static_cast<int>(pages / 10));
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");

  // Second round: every other page zeroed, all dirtied, so runs alternate
  // between one data page and one zero page (13 header bytes each).
  for (uint64_t p = 0; p < pages; ++p) {
    if (p % 2 == 0) guest_zero(*src_mem, p * kPageSize);
    dirty.mark(p * kPageSize);
  }
  ASSERT_TRUE(src.pending(PendingQuery::exact));
  drain(static_cast<int>(pages / 2 * kPageSize / limit));
  EXPECT_EQ(src.stats().zero_pages, pages / 2);
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
}

TEST_P(RamMigration, ALimitBelowOnePageStillSendsOnePagePerCall) {
  auto src_mem = memory(4 * kPageSize);
  ASSERT_TRUE(src_mem);
  for (uint64_t p = 0; p < 4; ++p) guest_fill(*src_mem, p * kPageSize, 8);
  FakeDirtySource dirty;
  RamMigratable src(*src_mem, dirty, {.max_iterate_bytes = 1});
  for (int call = 0; call < 4; ++call) {
    SectionWriter out;
    auto done = src.save_iterate(out);
    ASSERT_TRUE(done);
    EXPECT_EQ(*done, call == 3);
    EXPECT_EQ(out.size(), 4 + RamMigratable::kRunHeaderBytes + kPageSize);
  }
}

TEST_P(RamMigration, PagesRedirtiedBehindTheCursorDoNotStarveThoseAhead) {
  auto src_mem = memory(4 * kPageSize);
  ASSERT_TRUE(src_mem);
  for (uint64_t p = 0; p < 4; ++p) guest_fill(*src_mem, p * kPageSize, 8);
  FakeDirtySource dirty;
  RamMigratable src(*src_mem, dirty, {.max_iterate_bytes = 1});  // one page per call
  std::vector<uint64_t> order;
  for (int call = 0; call < 5; ++call) {
    SectionWriter out;
    ASSERT_TRUE(src.save_iterate(out));
    SectionReader in("ram[0]", out.data());
    ASSERT_EQ(in.u32(), 1u);
    order.push_back(*in.u64() / kPageSize);
    // The guest keeps rewriting page 0, collected before every call.
    dirty.mark(0);
    ASSERT_TRUE(src.pending(PendingQuery::exact));
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{0, 1, 2, 3, 0}));
}

TEST_P(RamMigration, CleanupStartsTheNextMigrationWithAFullRound) {
  auto src_mem = memory(16 * kPageSize);
  auto dst_mem = memory(16 * kPageSize);
  ASSERT_TRUE(src_mem && dst_mem);
  guest_fill(*src_mem, 2 * kPageSize, 1);
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty);
  SectionWriter lost;
  ASSERT_TRUE(src.save_iterate(lost));  // sent to a destination that then failed
  ASSERT_TRUE(src.cleanup(false));
  EXPECT_EQ(src.stats().data_pages, 0u);

  RamMigratable dst(*dst_mem, unused);
  EXPECT_EQ(src.pending(PendingQuery::estimate)->precopy_bytes, 16 * kPageSize);
  ASSERT_TRUE(iterate_into(src, dst));
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
}

TEST_P(RamMigration, RoundTripThroughTheStateStream) {
  auto src_mem = memory(kMiB);
  auto dst_mem = memory(kMiB);
  ASSERT_TRUE(src_mem && dst_mem);
  for (uint64_t p = 0; p < 256; p += 3) guest_fill(*src_mem, p * kPageSize, 7);
  FakeDirtySource dirty, unused;
  RamMigratable src(*src_mem, dirty, {.max_iterate_bytes = 128 * 1024}), dst(*dst_mem, unused);
  const SectionRegistry registry{SectionSpec{.kind = "ram", .min_version = 1, .version = 1}};

  // A key appears once per stream, so every call goes into a stream of its own.
  auto through_stream = [&](const SectionWriter& payload) {
    StateStreamWriter writer;
    ASSERT_TRUE(writer.add(src.key(), src.version(), payload));
    std::vector<uint8_t> stream = std::move(writer).finish();
    auto sections = parse_state_stream(stream, registry);
    ASSERT_TRUE(sections) << sections.error().message;
    ASSERT_EQ(sections->size(), 1u);
    SectionReader in = (*sections)[0].reader();
    auto loaded = dst.load(in, (*sections)[0].version);
    ASSERT_TRUE(loaded) << loaded.error().message;
  };
  int calls = 0;
  for (bool done = false; !done; ++calls) {
    ASSERT_LT(calls, 100);
    SectionWriter out;
    auto iterated = src.save_iterate(out);
    ASSERT_TRUE(iterated);
    done = *iterated;
    through_stream(out);
  }
  EXPECT_GT(calls, 1);
  guest_fill(*src_mem, 1 * kPageSize, 99);
  dirty.mark(kPageSize);
  ASSERT_TRUE(src.pending(PendingQuery::final));
  SectionWriter rest;
  ASSERT_TRUE(src.save_complete(rest));
  through_stream(rest);
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");

  // The section checksum covers the page data: a flipped bit never reaches load().
  StateStreamWriter writer;
  ASSERT_TRUE(writer.add(src.key(), src.version(), rest));
  std::vector<uint8_t> stream = std::move(writer).finish();
  stream[stream.size() - 100] ^= 0x10;
  EXPECT_THAT(message(parse_state_stream(stream, registry)),
              HasSubstr("ram[0] at offset 12: checksum mismatch"));
}

INSTANTIATE_TEST_SUITE_P(Backings, RamMigration,
                         ::testing::Values(MemoryBacking::memfd, MemoryBacking::anonymous),
                         [](const auto& info) { return std::string(backing_label(info.param)); });

TEST(RamMigrationAnonymous, MaxScanBytesBoundsTheZeroPagesExaminedPerCall) {
  auto src_mem = test::make_guest_memory(4 * kMiB, MemoryBacking::anonymous);
  ASSERT_TRUE(src_mem);
  FakeDirtySource dirty;
  // Populated zero pages (written with zeros): they must be read to be
  // known zero, so they cost scan budget (unpopulated ones do not).
  for (uint64_t gpa = 0; gpa < 4 * kMiB; gpa += kPageSize) guest_zero(*src_mem, gpa);
  RamMigratable src(*src_mem, dirty, {.max_scan_bytes = 256 * 1024});
  SectionWriter out;
  ASSERT_EQ(src.save_iterate(out), false);
  EXPECT_EQ(src.stats().skipped_zero_pages, 64u);
  EXPECT_EQ(src.pending(PendingQuery::estimate)->precopy_bytes, 4 * kMiB - 256 * 1024);
  EXPECT_EQ(out.size(), 4u) << "no runs: every page examined was zero";
}

TEST(RamMigrationSource, SaveCompleteWithoutTheFinalQueryFailsLoudly) {
  auto src_mem = test::make_guest_memory(16 * kPageSize);
  ASSERT_TRUE(src_mem);
  FakeDirtySource dirty;
  RamMigratable src(*src_mem, dirty);
  SectionWriter out;
  EXPECT_THAT(message(src.save_complete(out)),
              HasSubstr("ram[0]: save_complete without the final pending query"));
  ASSERT_TRUE(src.pending(PendingQuery::exact));
  EXPECT_THAT(message(src.save_complete(out)), HasSubstr("final pending query"))
      << "an exact query is not the final one: the VM may still be running";
  EXPECT_EQ(out.size(), 0u);
}

TEST(RamMigrationSource, CollectFailureNamesTheSectionAndKeepsPendingPages) {
  auto src_mem = test::make_guest_memory(16 * kPageSize);
  ASSERT_TRUE(src_mem);
  FakeDirtySource dirty;
  RamMigratable src(*src_mem, dirty);
  dirty.fail_next = true;
  EXPECT_EQ(message(src.pending(PendingQuery::exact)),
            "ram[0]: collecting dirty pages: KVM_GET_DIRTY_LOG slot 0: Bad address");
  EXPECT_EQ(src.pending(PendingQuery::estimate)->precopy_bytes, 16 * kPageSize);
}

TEST(RamMigrationSource, PostcopyPrepareIsNotSupportedYet) {
  auto mem = test::make_guest_memory(16 * kPageSize);
  ASSERT_TRUE(mem);
  FakeDirtySource dirty;
  RamMigratable ram(*mem, dirty);
  EXPECT_EQ(message(ram.postcopy_prepare()), "postcopy_prepare not supported by ram[0]");
  EXPECT_EQ(ram.key(), (SectionKey{"ram", 0}));
  EXPECT_EQ(ram.version(), 1u);
  EXPECT_EQ(ram.min_version(), 1u);
}

// Pins the version 1 layout: a change here is a format change (new version).
TEST(RamMigrationFormat, EncodesToTheGoldenBytes) {
  auto src_mem = test::make_guest_memory(16 * kPageSize);
  ASSERT_TRUE(src_mem);
  auto fill = [&](uint64_t page, uint8_t byte) {
    std::memset(src_mem->host_span(page * kPageSize, kPageSize)->data(), byte, kPageSize);
  };
  fill(1, 0x11);
  fill(2, 0x22);
  fill(5, 0x55);
  FakeDirtySource dirty;
  RamMigratable src(*src_mem, dirty);
  SectionWriter out;
  ASSERT_EQ(src.save_iterate(out), true);

  std::vector<uint8_t> expected = {
      0x02, 0x00, 0x00, 0x00,                          // 2 runs
      0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // gpa 0x1000
      0x02, 0x00, 0x00, 0x00,                          // 2 pages
      0x01,                                            // data
  };
  expected.insert(expected.end(), kPageSize, 0x11);
  expected.insert(expected.end(), kPageSize, 0x22);
  for (uint8_t b : {0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // gpa 0x5000
                    0x01, 0x00, 0x00, 0x00,                          // 1 page
                    0x01})                                           // data
    expected.push_back(b);
  expected.insert(expected.end(), kPageSize, 0x55);
  EXPECT_EQ(std::vector<uint8_t>(out.data().begin(), out.data().end()), expected);

  fill(2, 0x00);
  dirty.mark(2 * kPageSize);
  ASSERT_TRUE(src.pending(PendingQuery::final));
  SectionWriter rest;
  ASSERT_TRUE(src.save_complete(rest));
  const std::vector<uint8_t> zero_run = {
      0x01, 0x00, 0x00, 0x00,                          // 1 run
      0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // gpa 0x2000
      0x01, 0x00, 0x00, 0x00,                          // 1 page
      0x00,                                            // zero
  };
  EXPECT_EQ(std::vector<uint8_t>(rest.data().begin(), rest.data().end()), zero_run);

  // And the golden bytes load.
  auto dst_mem = test::make_guest_memory(16 * kPageSize);
  ASSERT_TRUE(dst_mem);
  RamMigratable dst(*dst_mem, dirty);
  ASSERT_TRUE(load_payload(dst, expected));
  ASSERT_TRUE(load_payload(dst, zero_run));
  EXPECT_EQ(describe(first_difference(*src_mem, *dst_mem)), "equal");
}

/// Builds payloads by hand for the loader's refusals.
class PayloadBuilder {
 public:
  PayloadBuilder& run(uint64_t gpa, uint32_t pages, uint8_t kind, uint64_t data_bytes,
                      uint8_t fill = 0xab) {
    ++count_;
    body_.u64(gpa);
    body_.u32(pages);
    body_.u8(kind);
    body_.raw(std::vector<uint8_t>(data_bytes, fill));
    return *this;
  }
  PayloadBuilder& extra(uint8_t byte) {
    body_.u8(byte);
    return *this;
  }
  PayloadBuilder& count(uint32_t n) {
    forced_count_ = n;
    return *this;
  }
  [[nodiscard]] std::vector<uint8_t> bytes() const {
    SectionWriter w;
    w.u32(forced_count_.value_or(count_));
    w.raw(body_.data());
    return std::move(w).take();
  }

 private:
  uint32_t count_ = 0;
  std::optional<uint32_t> forced_count_;
  SectionWriter body_;
};

class RamLoadRefuses : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = test::make_guest_memory(16 * kPageSize);
    ASSERT_TRUE(memory_);
    for (uint64_t p = 0; p < 16; ++p) guest_fill(*memory_, p * kPageSize, 0x40);
    before_ = contents();
    ram_.emplace(*memory_, dirty_);
  }
  std::vector<uint8_t> contents() const {
    std::vector<uint8_t> all(16 * kPageSize);
    EXPECT_TRUE(memory_->read(0, all));
    return all;
  }
  /// The loader's error; also checks that guest memory was not touched.
  std::string refusal(const PayloadBuilder& payload, uint32_t version = 1) {
    std::vector<uint8_t> bytes = payload.bytes();
    std::string error = message(load_payload(*ram_, bytes, version));
    EXPECT_TRUE(contents() == before_) << "a refused section must leave guest memory untouched";
    EXPECT_EQ(memory_->vmm_dirty(0).count(), 0u) << "and mark nothing";
    return error;
  }

  std::unique_ptr<GuestMemory> memory_;
  FakeDirtySource dirty_;
  std::optional<RamMigratable> ram_;
  std::vector<uint8_t> before_;
};

TEST_F(RamLoadRefuses, GpaOutsideRam) {
  EXPECT_THAT(refusal(PayloadBuilder().run(16 * kPageSize, 1, 0, 0)),
              HasSubstr("ram[0] payload offset 4: run 0 (gpa 0x10000, 1 pages): outside guest "
                        "RAM [0x0+65536 bytes]"));
  // Starts inside, ends outside.
  EXPECT_THAT(refusal(PayloadBuilder().run(15 * kPageSize, 2, 1, 2 * kPageSize)),
              HasSubstr("run 0 (gpa 0xf000, 2 pages): outside guest RAM"));
}

TEST_F(RamLoadRefuses, MisalignedGpa) {
  EXPECT_THAT(refusal(PayloadBuilder().run(0x1001, 1, 1, kPageSize)),
              HasSubstr("ram[0] payload offset 4: run 0 (gpa 0x1001, 1 pages): gpa is not page "
                        "aligned"));
}

TEST_F(RamLoadRefuses, UnknownKind) {
  EXPECT_THAT(refusal(PayloadBuilder().run(0, 1, 7, 0)),
              HasSubstr("ram[0] payload offset 16: run 0 (gpa 0x0, 1 pages): unknown kind 7"));
}

TEST_F(RamLoadRefuses, EmptyRun) {
  EXPECT_THAT(refusal(PayloadBuilder().run(0, 0, 0, 0)),
              HasSubstr("ram[0] payload offset 12: run 0 (gpa 0x0, 0 pages): a run must cover at "
                        "least one page"));
}

TEST_F(RamLoadRefuses, TruncatedPageData) {
  EXPECT_THAT(refusal(PayloadBuilder().run(0, 2, 1, kPageSize + 10)),
              HasSubstr("ram[0] payload offset 17: run 0 (gpa 0x0, 2 pages): needs 8192 bytes of "
                        "page data but only 4106 are left"));
}

TEST_F(RamLoadRefuses, TruncatedRunHeader) {
  EXPECT_THAT(
      refusal(PayloadBuilder().run(0, 1, 0, 0).count(2)),
      HasSubstr("ram[0] payload offset 0: 2 RAM runs of at least 13 bytes each cannot fit"));
  // The count fits the bytes, but the second header is cut short.
  PayloadBuilder cut;
  cut.run(0, 1, 1, kPageSize).count(2);
  for (int i = 0; i < 5; ++i) cut.extra(0);
  EXPECT_THAT(refusal(cut), HasSubstr("ram[0] payload offset 4113: needs 8 bytes but only 5 are "
                                      "left"));
}

TEST_F(RamLoadRefuses, TrailingGarbage) {
  EXPECT_THAT(refusal(PayloadBuilder().run(0, 1, 0, 0).extra(0xff)),
              HasSubstr("ram[0] payload offset 17: 1 trailing bytes"));
}

TEST_F(RamLoadRefuses, AGoodRunBeforeABadOne) {
  // The first run alone would load; the whole section is refused, so it must
  // not have been written either.
  EXPECT_THAT(refusal(PayloadBuilder()
                          .run(0, 1, 1, kPageSize, 0x01)
                          .run(2 * kPageSize, 1, 0, 0)
                          .run(32 * kPageSize, 1, 0, 0)),
              HasSubstr("run 2 (gpa 0x20000, 1 pages): outside guest RAM"));
}

TEST_F(RamLoadRefuses, VersionOutOfRange) {
  PayloadBuilder good;
  good.run(0, 1, 0, 0);
  EXPECT_EQ(refusal(good, 2),
            "ram[0]: version 2 is not supported (this loader reads versions 1..1)");
  EXPECT_EQ(refusal(good, 0),
            "ram[0]: version 0 is not supported (this loader reads versions 1..1)");
  // Through the state stream, the registry refuses it before load() runs.
  StateStreamWriter writer;
  ASSERT_TRUE(writer.add({"ram", 0}, 2, good.bytes()));
  std::vector<uint8_t> stream = std::move(writer).finish();
  const SectionRegistry registry{
      SectionSpec{.kind = "ram", .min_version = ram_->min_version(), .version = ram_->version()}};
  EXPECT_THAT(message(parse_state_stream(stream, registry)),
              HasSubstr("ram[0] at offset 12: version 2 is too new (this loader reads versions "
                        "1..1)"));
}

TEST_F(RamLoadRefuses, NothingWhenTheSectionIsGood) {
  // Control for the refusals above: the same fixture loads a good section,
  // writes it and marks it in the VMM dirty bitmap.
  std::vector<uint8_t> bytes = PayloadBuilder().run(kPageSize, 2, 0, 0).bytes();
  ASSERT_TRUE(load_payload(*ram_, bytes));
  EXPECT_TRUE(page_is_zero(*memory_, kPageSize));
  EXPECT_TRUE(page_is_zero(*memory_, 2 * kPageSize));
  EXPECT_FALSE(page_is_zero(*memory_, 3 * kPageSize));
  EXPECT_EQ(memory_->vmm_dirty(0).count(), 2u);
}

}  // namespace
}  // namespace godwit::migration
