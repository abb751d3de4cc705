// ioeventfd and irqfd: a guest `out` to a registered port signals the
// eventfd with no userspace exit (datamatch filters, unregister restores the
// exit); an irqfd write raises its GSI in the in-kernel PIC; GSI routing
// takes effect.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <variant>

#include "base/unique_fd.h"
#include "kvm/exit.h"
#include "kvm_test_guest.h"
#include "test_util.h"

namespace godwit::test {
namespace {

UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)); }

// The eventfd counter (0 when nothing was signalled).
uint64_t drain(const UniqueFd& fd) {
  uint64_t value = 0;
  if (::read(fd.get(), &value, sizeof(value)) != sizeof(value)) return 0;
  return value;
}

TEST(KvmEventfd, IoeventfdSignalsWithoutUserspaceExit) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  const uint8_t code[] = {
      0xB0, 0x07,  // mov al, 7
      0xE6, 0x30,  // out 0x30, al   -> eventfd, no exit
      0xE6, 0x31,  // out 0x31, al   -> datamatch 5 does not match 7: exit
      0xB0, 0x05,  // mov al, 5
      0xE6, 0x31,  // out 0x31, al   -> matches: eventfd, no exit
      0xE6, 0x10,  // out 0x10, al   -> exit
      0xE6, 0x30,  // out 0x30, al   -> unregistered by then: exit
      0xF4,        // hlt
  };
  memory.load(code);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;
  UniqueFd any = make_eventfd();
  UniqueFd matching = make_eventfd();
  ASSERT_TRUE(any && matching);
  auto registered = guest->vm->register_ioeventfd(any.get(), 0x30, 1, true);
  ASSERT_TRUE(registered) << registered.error().message;
  registered = guest->vm->register_ioeventfd(matching.get(), 0x31, 1, true, 5);
  ASSERT_TRUE(registered) << registered.error().message;

  kvm::IoOut out = expect_out(*guest->vcpu);
  EXPECT_EQ(out.port, 0x31);
  EXPECT_EQ(drain(any), 1u);
  EXPECT_EQ(drain(matching), 0u);

  out = expect_out(*guest->vcpu);
  EXPECT_EQ(out.port, 0x10);
  EXPECT_EQ(drain(matching), 1u);

  auto unregistered = guest->vm->unregister_ioeventfd(any.get(), 0x30, 1, true);
  ASSERT_TRUE(unregistered) << unregistered.error().message;
  out = expect_out(*guest->vcpu);
  EXPECT_EQ(out.port, 0x30);
  EXPECT_EQ(drain(any), 0u);
}

TEST(KvmEventfd, IrqfdRaisesItsGsiInThePic) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory, {.irqchip = true});
  ASSERT_TRUE(guest) << guest.error().message;
  UniqueFd trigger = make_eventfd();
  ASSERT_TRUE(trigger);
  constexpr uint32_t kGsi = 5;

  auto before = guest->vm->get_irqchip(KVM_IRQCHIP_PIC_MASTER);
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_EQ(before->chip.pic.irr & (1u << kGsi), 0u);

  auto registered = guest->vm->register_irqfd(trigger.get(), kGsi);
  ASSERT_TRUE(registered) << registered.error().message;
  uint64_t one = 1;
  ASSERT_EQ(::write(trigger.get(), &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));

  // KVM injects from a work queue: wait (bounded) for the request to land.
  bool raised = false;
  for (int attempt = 0; attempt < 2000 && !raised; ++attempt) {
    auto pic = guest->vm->get_irqchip(KVM_IRQCHIP_PIC_MASTER);
    ASSERT_TRUE(pic) << pic.error().message;
    raised = (pic->chip.pic.irr & (1u << kGsi)) != 0;
    if (!raised) ::poll(nullptr, 0, 1);
  }
  EXPECT_TRUE(raised);

  auto unregistered = guest->vm->unregister_irqfd(trigger.get(), kGsi);
  ASSERT_TRUE(unregistered) << unregistered.error().message;
}

TEST(KvmEventfd, GsiRoutingRemapsALineToAnotherPicPin) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory, {.irqchip = true});
  ASSERT_TRUE(guest) << guest.error().message;
  kvm_irq_routing_entry route{};
  route.gsi = 10;
  route.type = KVM_IRQ_ROUTING_IRQCHIP;
  route.u.irqchip.irqchip = KVM_IRQCHIP_PIC_MASTER;
  route.u.irqchip.pin = 3;
  auto routed = guest->vm->set_gsi_routing(std::span<const kvm_irq_routing_entry>(&route, 1));
  ASSERT_TRUE(routed) << routed.error().message;

  auto raised = guest->vm->irq_line(10, true);
  ASSERT_TRUE(raised) << raised.error().message;
  auto pic = guest->vm->get_irqchip(KVM_IRQCHIP_PIC_MASTER);
  ASSERT_TRUE(pic) << pic.error().message;
  EXPECT_EQ(pic->chip.pic.irr, 1u << 3);
}

TEST(KvmEventfd, IrqfdNeedsAnIrqchip) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;
  UniqueFd trigger = make_eventfd();
  auto registered = guest->vm->register_irqfd(trigger.get(), 4);
  ASSERT_FALSE(registered);
  EXPECT_NE(registered.error().message.find("KVM_IRQFD assign"), std::string::npos)
      << registered.error().message;
}

}  // namespace
}  // namespace godwit::test
