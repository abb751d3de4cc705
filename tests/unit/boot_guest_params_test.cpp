// Guest parameter tables: parsing --guest-param items, finding tables in an
// image in guest memory, patching values, and the errors.
#include <gtest/gtest.h>

#include <cstring>

#include "memory/guest_memory.h"
#include "vmm/boot/guest_params.h"

namespace godwit::boot {
namespace {

std::vector<uint8_t> table(const char* guest,
                           std::vector<std::pair<const char*, uint32_t>> entries) {
  std::vector<uint8_t> t(24 + 16 * entries.size());
  std::memcpy(t.data(), "GWPARAM", 8);
  std::strncpy(reinterpret_cast<char*>(t.data() + 8), guest, 8);
  uint32_t n = static_cast<uint32_t>(entries.size());
  std::memcpy(t.data() + 16, &n, 4);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::strncpy(reinterpret_cast<char*>(t.data() + 24 + 16 * i), entries[i].first, 12);
    std::memcpy(t.data() + 24 + 16 * i + 12, &entries[i].second, 4);
  }
  return t;
}

class GuestParamsTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kImage = 0x100000;
  static constexpr uint64_t kImageSize = 128 * 1024;

  void SetUp() override {
    auto m = GuestMemory::create(
        {.size = 4 * kMiB, .backing = MemoryBacking::anonymous, .hugetlbfs_dir = {}});
    ASSERT_TRUE(m);
    memory = std::move(*m);
    // The magic also appears misaligned: only 16-byte aligned copies count.
    ASSERT_TRUE(memory->write(kImage + 0x203, table("bogus", {{"x", 1}})));
    ASSERT_TRUE(memory->write(kImage + 0x400, table("ab", {{"pages", 100}, {"delay", 7}})));
    ASSERT_TRUE(memory->write(kImage + 0x800, table("selfchk", {{"iterations", 5}})));
  }

  uint32_t value_at(uint64_t table_offset, size_t entry) {
    return *memory->read_obj<uint32_t>(kImage + table_offset + 24 + 16 * entry + 12);
  }

  Result<void> patch(std::vector<std::string> items) {
    auto params = parse_guest_params(items);
    if (!params) return fail(params.error());
    return patch_guest_params(*memory, kImage, kImageSize, *params);
  }

  std::unique_ptr<GuestMemory> memory;
};

TEST(GuestParamParse, ParsesListsDecimalAndHex) {
  std::vector<std::string> items{"ab.pages=25600,ab.delay=0", "selfchk.iterations=0x10"};
  auto params = parse_guest_params(items);
  ASSERT_TRUE(params) << params.error().message;
  std::vector<GuestParam> expected{
      {"ab", "pages", 25600}, {"ab", "delay", 0}, {"selfchk", "iterations", 16}};
  EXPECT_EQ(*params, expected);
}

TEST(GuestParamParse, RejectsMalformedItems) {
  for (const char* bad :
       {"ab.pages", "abpages=1", "ab.pages=", "ab.pages=-1", "ab.pages=4294967296", "ab.pages=12x",
        ".pages=1", "ab.=1", "toolongname.k=1", "ab.averyverylongkey=1", "ab.pages=1,"}) {
    std::vector<std::string> items{bad};
    auto params = parse_guest_params(items);
    EXPECT_FALSE(params) << bad;
    if (!params) {
      EXPECT_NE(params.error().message.find("guest parameter"), std::string::npos);
    }
  }
  std::vector<std::string> max{"ab.pages=4294967295"};
  EXPECT_TRUE(parse_guest_params(max));
}

TEST_F(GuestParamsTest, FindsAlignedTablesOnly) {
  auto tables = find_guest_param_tables(*memory, kImage, kImageSize);
  ASSERT_TRUE(tables) << tables.error().message;
  ASSERT_EQ(tables->size(), 2u);
  EXPECT_EQ((*tables)[0].guest, "ab");
  EXPECT_EQ((*tables)[0].gpa, kImage + 0x400);
  EXPECT_EQ((*tables)[0].keys, (std::vector<std::string>{"pages", "delay"}));
  EXPECT_EQ((*tables)[1].guest, "selfchk");
}

TEST_F(GuestParamsTest, PatchesTheNamedValues) {
  ASSERT_TRUE(patch({"ab.delay=0x20,selfchk.iterations=99"}));
  EXPECT_EQ(value_at(0x400, 0), 100u);
  EXPECT_EQ(value_at(0x400, 1), 0x20u);
  EXPECT_EQ(value_at(0x800, 0), 99u);
}

TEST_F(GuestParamsTest, UnknownGuestNamesTheTablesFound) {
  auto r = patch({"xy.pages=1"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no parameter table named 'xy'"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("tables found: ab, selfchk"), std::string::npos)
      << r.error().message;
}

TEST_F(GuestParamsTest, UnknownKeyNamesTheKeysOffered) {
  auto r = patch({"ab.speed=1"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no key 'speed'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("keys: pages, delay"), std::string::npos) << r.error().message;
}

TEST_F(GuestParamsTest, BadValueIsRejectedBeforeAnythingIsWritten) {
  auto r = patch({"ab.pages=5,ab.delay=lots"});
  ASSERT_FALSE(r);
  EXPECT_EQ(value_at(0x400, 0), 100u);
}

TEST_F(GuestParamsTest, OnlyTheFirst64KiBOfTheImageIsSearched) {
  ASSERT_TRUE(memory->write(kImage + 0x10000, table("late", {{"k", 1}})));
  auto r = patch({"late.k=2"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("tables found: ab, selfchk"), std::string::npos);
}

TEST_F(GuestParamsTest, ImageWithoutTablesSaysSo) {
  auto r = patch_guest_params(*memory, 0x300000, 4096, std::vector<GuestParam>{{"ab", "pages", 1}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("tables found: none"), std::string::npos) << r.error().message;
}

TEST_F(GuestParamsTest, TableClaimingTooManyEntriesIsAnError) {
  auto bad = table("ab", {{"pages", 1}});
  uint32_t huge = 100000;
  std::memcpy(bad.data() + 16, &huge, 4);
  ASSERT_TRUE(memory->write(kImage + 0xc00, bad));
  auto r = patch({"ab.pages=1"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("claims 100000 entries"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace godwit::boot
