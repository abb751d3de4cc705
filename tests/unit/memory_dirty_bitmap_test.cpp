// DirtyBitmap: marking, ranges across words, harvesting, concurrent marking.
#include <gtest/gtest.h>

#include <thread>

#include "memory/guest_memory.h"

namespace godwit {
namespace {

TEST(DirtyBitmap, MarkAndTest) {
  DirtyBitmap bm(100);
  EXPECT_EQ(bm.words(), 2u);
  bm.mark(3);
  bm.mark(99);
  bm.mark(100);  // out of range: ignored
  EXPECT_TRUE(bm.test(3));
  EXPECT_TRUE(bm.test(99));
  EXPECT_FALSE(bm.test(4));
  EXPECT_EQ(bm.count(), 2u);
}

TEST(DirtyBitmap, MarkRangeAcrossWordBoundaries) {
  DirtyBitmap bm(300);
  bm.mark_range(60, 200);  // pages 60..259: spans words 0-4
  EXPECT_EQ(bm.count(), 200u);
  EXPECT_FALSE(bm.test(59));
  EXPECT_TRUE(bm.test(60));
  EXPECT_TRUE(bm.test(259));
  EXPECT_FALSE(bm.test(260));
  bm.mark_range(290, 50);  // clipped at the end
  EXPECT_EQ(bm.count(), 210u);
}

TEST(DirtyBitmap, TakeWordReturnsAndClears) {
  DirtyBitmap bm(128);
  bm.mark(64);
  bm.mark(66);
  EXPECT_EQ(bm.take_word(0), 0u);
  EXPECT_EQ(bm.take_word(1), 0b101u);
  EXPECT_EQ(bm.take_word(1), 0u);
  EXPECT_EQ(bm.count(), 0u);
  EXPECT_EQ(bm.take_word(2), 0u);  // past the end
}

TEST(DirtyBitmap, ClearResetsAll) {
  DirtyBitmap bm(1000);
  bm.mark_range(0, 1000);
  EXPECT_EQ(bm.count(), 1000u);
  bm.clear();
  EXPECT_EQ(bm.count(), 0u);
}

TEST(DirtyBitmap, ConcurrentMarkingFromSeveralThreadsLosesNothing) {
  constexpr uint64_t kPages = 64 * 1024;
  constexpr int kThreads = 4;
  DirtyBitmap bm(kPages);
  std::vector<std::thread> threads;
  // Each thread marks every kThreads-th page, so all threads hit every word.
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&bm, t] {
      for (uint64_t p = t; p < kPages; p += kThreads) bm.mark(p);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bm.count(), kPages);
}

}  // namespace
}  // namespace godwit
