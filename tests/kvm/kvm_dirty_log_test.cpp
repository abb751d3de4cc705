// Dirty page tracking with the bitmap: KVM_GET_DIRTY_LOG shows exactly the
// page a guest wrote; with MANUAL_DIRTY_LOG_PROTECT2 + INITIALLY_SET every
// page starts dirty until KVM_CLEAR_DIRTY_LOG, after which one write shows
// exactly one page.
#include <gtest/gtest.h>

#include <variant>

#include "kvm/exit.h"
#include "kvm_test_guest.h"
#include "test_util.h"

namespace godwit::test {
namespace {

// Writes one byte to data page 3 (gpa 0x5005), then reports on port 0x10.
const uint8_t kWriteOnePage[] = {
    0xC6, 0x06, 0x05, 0x50, 0x77,  // mov byte [0x5005], 0x77
    0xE6, 0x10,                    // out 0x10, al
    0xF4,                          // hlt
};
constexpr uint64_t kWrittenPage = (0x5005 - kDataGpa) / 0x1000;

void run_to_port_0x10(kvm::Vcpu& vcpu) {
  auto exit = vcpu.run();
  ASSERT_TRUE(exit) << exit.error().message;
  auto* out = std::get_if<kvm::IoOut>(&*exit);
  ASSERT_NE(out, nullptr) << kvm::describe(*exit);
  EXPECT_EQ(out->port, 0x10);
}

TEST(KvmDirtyLog, BitmapShowsExactlyTheWrittenPage) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  memory.load(kWriteOnePage);
  auto guest = make_guest(memory, {.log_dirty = true});
  ASSERT_TRUE(guest) << guest.error().message;

  ASSERT_NO_FATAL_FAILURE(run_to_port_0x10(*guest->vcpu));
  EXPECT_EQ(memory.data.data()[0x3005], 0x77);

  uint64_t bitmap[1] = {~0ull};
  auto got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], 1ull << kWrittenPage);

  // Without manual protect, reading the log clears it.
  got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], 0u);
}

TEST(KvmDirtyLog, VmmWritesAreInvisibleToTheLog) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  memory.load(kWriteOnePage);
  auto guest = make_guest(memory, {.log_dirty = true});
  ASSERT_TRUE(guest) << guest.error().message;
  memory.data.data()[0x1000] = 1;  // page 1, written by the host only

  ASSERT_NO_FATAL_FAILURE(run_to_port_0x10(*guest->vcpu));
  uint64_t bitmap[1] = {};
  auto got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], 1ull << kWrittenPage);
}

TEST(KvmDirtyLog, ManualProtectInitiallySetThenClearThenOneWrite) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  memory.load(kWriteOnePage);
  auto guest =
      make_guest(memory, {.log_dirty = true, .manual_protect = true, .initially_set = true});
  ASSERT_TRUE(guest) << guest.error().message;
  constexpr uint64_t kAllPages = (1ull << kDataPages) - 1;

  uint64_t bitmap[1] = {};
  auto got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], kAllPages);
  // Manual protect: reading does not clear.
  got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], kAllPages);

  const uint64_t clear_all[1] = {kAllPages};
  auto cleared = guest->vm->clear_dirty_log(kDataSlot, 0, kDataPages, clear_all);
  ASSERT_TRUE(cleared) << cleared.error().message;
  got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], 0u);

  ASSERT_NO_FATAL_FAILURE(run_to_port_0x10(*guest->vcpu));
  got = guest->vm->get_dirty_log(kDataSlot, bitmap);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(bitmap[0], 1ull << kWrittenPage);
}

TEST(KvmDirtyLog, ClearRejectsMisalignedRangesWithTheArguments) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest =
      make_guest(memory, {.log_dirty = true, .manual_protect = true, .initially_set = true});
  ASSERT_TRUE(guest) << guest.error().message;
  const uint64_t bits[1] = {1};
  // first_page must be a multiple of 64.
  auto cleared = guest->vm->clear_dirty_log(kDataSlot, 3, 1, bits);
  ASSERT_FALSE(cleared);
  EXPECT_NE(cleared.error().message.find("KVM_CLEAR_DIRTY_LOG slot 1 first_page 3 num_pages 1"),
            std::string::npos)
      << cleared.error().message;
}

TEST(KvmDirtyLog, ShortBitmapIsRefused) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory, {.log_dirty = true});
  ASSERT_TRUE(guest) << guest.error().message;
  auto got = guest->vm->get_dirty_log(kDataSlot, std::span<uint64_t>());
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("KVM_GET_DIRTY_LOG slot 1"), std::string::npos);
}

}  // namespace
}  // namespace godwit::test
