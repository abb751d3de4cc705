// The per-vCPU dirty ring: a guest writes a few pages, harvesting returns
// exactly those (slot, page) entries, KVM_RESET_DIRTY_RINGS re-protects
// them, and a later write to a harvested page is reported again.
// (Real-mode writers are emulated on PVM hosts, which push one entry per
// store: fine for a handful of stores.)
#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <variant>

#include "kvm/exit.h"
#include "kvm_test_guest.h"
#include "test_util.h"

namespace godwit::test {
namespace {

using Entry = std::pair<uint32_t, uint64_t>;  // slot, page offset in slot

constexpr uint32_t kRingBytes = 4096 * sizeof(kvm_dirty_gfn);

std::set<Entry> harvest(kvm::Vcpu& vcpu, size_t* count) {
  std::set<Entry> entries;
  auto n = vcpu.harvest_dirty_ring([&](uint32_t slot, uint64_t offset) {
    entries.insert({slot, offset});
  });
  EXPECT_TRUE(n) << n.error().message;
  *count = n.value_or(0);
  return entries;
}

TEST(KvmDirtyRing, HarvestReturnsExactlyTheWrittenPagesAndResetRearms) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  const uint8_t code[] = {
      0xC6, 0x06, 0x10, 0x30, 0x01,  // mov byte [0x3010], 1   (data page 1)
      0xC6, 0x06, 0x20, 0x60, 0x02,  // mov byte [0x6020], 2   (data page 4)
      0xC6, 0x06, 0x30, 0x80, 0x03,  // mov byte [0x8030], 3   (data page 6)
      0xE6, 0x10,                    // out 0x10, al
      0xC6, 0x06, 0x11, 0x30, 0x04,  // mov byte [0x3011], 4   (data page 1 again)
      0xE6, 0x11,                    // out 0x11, al
      0xF4,                          // hlt
  };
  memory.load(code);
  auto system = kvm::System::open();
  ASSERT_TRUE(system) << system.error().message;
  auto ring_cap = system->check_extension(KVM_CAP_DIRTY_LOG_RING);
  if (!ring_cap || *ring_cap == 0) GTEST_SKIP() << "host has no KVM_CAP_DIRTY_LOG_RING";

  auto guest = make_guest(memory, {.log_dirty = true, .dirty_ring_bytes = kRingBytes});
  ASSERT_TRUE(guest) << guest.error().message;
  EXPECT_EQ(guest->vm->dirty_ring_bytes(), kRingBytes);

  auto exit = guest->vcpu->run();
  ASSERT_TRUE(exit) << exit.error().message;
  auto* out = std::get_if<kvm::IoOut>(&*exit);
  ASSERT_NE(out, nullptr) << kvm::describe(*exit);
  ASSERT_EQ(out->port, 0x10);

  size_t count = 0;
  std::set<Entry> dirty = harvest(*guest->vcpu, &count);
  EXPECT_EQ(dirty, (std::set<Entry>{{kDataSlot, 1}, {kDataSlot, 4}, {kDataSlot, 6}}));
  EXPECT_GE(count, 3u);
  const size_t first_harvest = count;
  // Nothing new until the guest writes again.
  EXPECT_TRUE(harvest(*guest->vcpu, &count).empty());
  EXPECT_EQ(count, 0u);

  auto reset = guest->vm->reset_dirty_rings();
  ASSERT_TRUE(reset) << reset.error().message;
  EXPECT_EQ(*reset, first_harvest);

  exit = guest->vcpu->run();
  ASSERT_TRUE(exit) << exit.error().message;
  out = std::get_if<kvm::IoOut>(&*exit);
  ASSERT_NE(out, nullptr) << kvm::describe(*exit);
  ASSERT_EQ(out->port, 0x11);
  // Page 1 was re-protected by the reset, so its second write is logged again.
  EXPECT_EQ(harvest(*guest->vcpu, &count), (std::set<Entry>{{kDataSlot, 1}}));
}

TEST(KvmDirtyRing, HarvestWithoutRingFailsClearly) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;
  auto n = guest->vcpu->harvest_dirty_ring([](uint32_t, uint64_t) {});
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("ring not enabled"), std::string::npos);
}

TEST(KvmDirtyRing, EnableAfterVcpuCreationIsRefused) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;
  auto enabled = guest->vm->enable_dirty_ring(kRingBytes);
  ASSERT_FALSE(enabled);
  EXPECT_NE(enabled.error().message.find("KVM_ENABLE_CAP"), std::string::npos)
      << enabled.error().message;
}

}  // namespace
}  // namespace godwit::test
