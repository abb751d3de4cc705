// Unit tests for the a-b invariant checker (tools/abcheck): consistent dumps
// are accepted with the right k and boundary; every kind of corruption a lost
// or stale page can cause is rejected and located.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tools/abcheck/abcheck.h"

namespace {

using godwit::abcheck::check_ab;

constexpr uint64_t kPage = 4096;

/// A dump of counters.size() pages whose first bytes hold `counters`; the rest
/// of every page is filled with noise the checker must ignore.
std::vector<uint8_t> make_dump(const std::vector<uint8_t>& counters, uint64_t page = kPage) {
  std::vector<uint8_t> dump(counters.size() * page);
  for (size_t i = 0; i < dump.size(); ++i) dump[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t p = 0; p < counters.size(); ++p) dump[p * page] = counters[p];
  return dump;
}

TEST(AbCheck, AllEqualIsConsistent) {
  auto dump = make_dump(std::vector<uint8_t>(64, 9));
  auto r = check_ab(dump);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.pages, 64u);
  EXPECT_EQ(r.counter, 9);
  EXPECT_EQ(r.trailing_counter, 9);
  EXPECT_EQ(r.boundary, 64u);
  EXPECT_FALSE(r.bad_page);
}

TEST(AbCheck, ProperBoundaryIsReported) {
  std::vector<uint8_t> counters(100, 41);
  for (size_t p = 0; p < 37; ++p) counters[p] = 42;
  auto r = check_ab(make_dump(counters));
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.counter, 42);
  EXPECT_EQ(r.trailing_counter, 41);
  EXPECT_EQ(r.boundary, 37u);
}

TEST(AbCheck, BoundaryAtLastPage) {
  std::vector<uint8_t> counters(10, 5);
  counters[9] = 4;
  auto r = check_ab(make_dump(counters));
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.boundary, 9u);
}

TEST(AbCheck, WrapAroundFrom255To0) {
  std::vector<uint8_t> counters(20, 255);
  for (size_t p = 0; p < 5; ++p) counters[p] = 0;
  auto r = check_ab(make_dump(counters));
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.counter, 0);
  EXPECT_EQ(r.trailing_counter, 255);
  EXPECT_EQ(r.boundary, 5u);
}

TEST(AbCheck, TwoBoundariesRejected) {
  // k k k-1 k-1 k k-1: a page dirtied after the boundary reverted (lost update).
  auto r = check_ab(make_dump({8, 8, 7, 7, 8, 7}));
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.bad_page);
  EXPECT_EQ(*r.bad_page, 4u);
  EXPECT_EQ(r.bad_value, 8);
  EXPECT_EQ(r.boundary, 2u);
}

TEST(AbCheck, LeadingPageBehindRejected) {
  // Page 0 is always incremented first, so k-1 before k is two boundaries.
  auto r = check_ab(make_dump({7, 8, 8, 8}));
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.bad_page);
  EXPECT_EQ(*r.bad_page, 1u);
  EXPECT_EQ(r.bad_value, 8);
}

TEST(AbCheck, CounterOffByTwoRejected) {
  std::vector<uint8_t> counters(30, 100);
  counters[17] = 98;
  auto r = check_ab(make_dump(counters));
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.bad_page);
  EXPECT_EQ(*r.bad_page, 17u);
  EXPECT_EQ(r.bad_value, 98);
  EXPECT_NE(r.message.find("page 17"), std::string::npos) << r.message;
}

TEST(AbCheck, CounterAheadAfterBoundaryRejected) {
  std::vector<uint8_t> counters(30, 99);
  counters[0] = 100;
  counters[20] = 101;
  auto r = check_ab(make_dump(counters));
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.bad_page);
  EXPECT_EQ(*r.bad_page, 20u);
}

TEST(AbCheck, HandCorruptedDumpRejected) {
  std::vector<uint8_t> counters(256, 3);
  for (size_t p = 0; p < 128; ++p) counters[p] = 4;
  auto dump = make_dump(counters);
  ASSERT_TRUE(check_ab(dump).ok);
  dump[200 * kPage] = 0xAA;  // a stale or garbage page in the trailing run
  auto r = check_ab(dump);
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.bad_page);
  EXPECT_EQ(*r.bad_page, 200u);
  EXPECT_EQ(r.bad_value, 0xAA);
}

TEST(AbCheck, OnlyFirstByteOfEachPageMatters) {
  auto dump = make_dump(std::vector<uint8_t>(8, 1));
  dump[3 * kPage + 1] = 0x55;  // not a counter byte
  EXPECT_TRUE(check_ab(dump).ok);
}

TEST(AbCheck, EmptyDumpIsAFailureNotACrash) {
  auto r = check_ab({});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.pages, 0u);
  EXPECT_FALSE(r.bad_page);
  EXPECT_FALSE(r.message.empty());
}

TEST(AbCheck, PartialPageIgnored) {
  auto dump = make_dump({6, 6, 5});
  dump.resize(2 * kPage + 100);  // third page incomplete: only two pages count
  auto r = check_ab(dump);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.pages, 2u);
  EXPECT_EQ(r.boundary, 2u);
}

TEST(AbCheck, ZeroPageSizeRejected) {
  auto dump = make_dump({1});
  EXPECT_FALSE(check_ab(dump, 0).ok);
}

TEST(AbCheck, CustomPageSize) {
  auto dump = make_dump({2, 2, 1, 1}, 512);
  auto r = check_ab(dump, 512);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.pages, 4u);
  EXPECT_EQ(r.boundary, 2u);
}

}  // namespace
