// State round trips: a guest stopped mid-program is saved with
// save_vcpu_state, restored into a fresh VM's vCPU over the same memory, and
// finishes its computation there; VM-wide state (PIC, IOAPIC, PIT, clock)
// restored into another VM reads back the same.
#include <gtest/gtest.h>

#include <variant>

#include "kvm/exit.h"
#include "kvm/vcpu_state.h"
#include "kvm/vm_state.h"
#include "kvm_test_guest.h"
#include "test_util.h"

namespace godwit::test {
namespace {

// Sets registers, stops on port 0x10, then combines them into memory.
const uint8_t kComputeAcrossStop[] = {
    0xB8, 0x11, 0x11,  // mov ax, 0x1111
    0xBB, 0x22, 0x22,  // mov bx, 0x2222
    0xB9, 0x33, 0x33,  // mov cx, 0x3333
    0xE6, 0x10,        // out 0x10, al      <- saved here
    0x01, 0xD8,        // add ax, bx
    0x01, 0xC8,        // add ax, cx
    0xA3, 0x00, 0x20,  // mov [0x2000], ax
    0xE6, 0x11,        // out 0x11, al
    0xF4,              // hlt
};

TEST(KvmState, VcpuStateRoundTripIntoAFreshVm) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  memory.load(kComputeAcrossStop);
  auto source = make_guest(memory, {.irqchip = true});
  ASSERT_TRUE(source) << source.error().message;
  ASSERT_EQ(expect_out(*source->vcpu).port, 0x10);

  // Let KVM finish the `out` before reading state.
  source->vcpu->set_immediate_exit(true);
  auto completed = source->vcpu->run();
  ASSERT_TRUE(completed) << completed.error().message;
  ASSERT_TRUE(std::holds_alternative<kvm::Interrupted>(*completed));
  source->vcpu->set_immediate_exit(false);

  auto msrs = kvm::saveable_msrs(source->system, *source->vcpu);
  ASSERT_TRUE(msrs) << msrs.error().message;
  auto saved = kvm::save_vcpu_state(*source->vcpu, *msrs);
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->regs.rbx & 0xFFFF, 0x2222u);
  EXPECT_EQ(saved->msrs.size(), msrs->size());
  EXPECT_EQ(saved->xsave.empty(), !source->vcpu->has_xsave());

  auto vm_state = kvm::save_vm_state(*source->vm);
  ASSERT_TRUE(vm_state) << vm_state.error().message;
  // The source VM goes away: only memory and the saved state remain.
  source->vcpu.reset();
  source->vm.reset();
  auto target = make_guest(memory, {.irqchip = true}, /*reset_registers=*/false);
  ASSERT_TRUE(target) << target.error().message;
  auto devices = kvm::restore_vm_devices(*target->vm, *vm_state);
  ASSERT_TRUE(devices) << devices.error().message;
  auto restored = kvm::restore_vcpu_state(*target->vcpu, *saved);
  ASSERT_TRUE(restored) << restored.error().message;
  auto clock = kvm::restore_vm_clock(*target->vm, *vm_state);
  ASSERT_TRUE(clock) << clock.error().message;

  kvm::IoOut out = expect_out(*target->vcpu);
  EXPECT_EQ(out.port, 0x11);
  EXPECT_EQ(memory.data.data()[0], 0x66);
  EXPECT_EQ(memory.data.data()[1], 0x66);
  auto regs = target->vcpu->get_regs();
  ASSERT_TRUE(regs) << regs.error().message;
  EXPECT_EQ(regs->rax & 0xFFFF, 0x6666u);
  EXPECT_EQ(regs->rcx & 0xFFFF, 0x3333u);
}

TEST(KvmState, VmStateRoundTrip) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto source = make_guest(memory, {.irqchip = true});
  ASSERT_TRUE(source) << source.error().message;
  kvm::Vm& vm = *source->vm;

  ASSERT_TRUE(vm.irq_line(3, true));
  auto pit = vm.get_pit2();
  ASSERT_TRUE(pit) << pit.error().message;
  pit->channels[0].count = 0x1234;
  pit->channels[0].mode = 2;
  ASSERT_TRUE(vm.set_pit2(*pit));
  kvm_clock_data clock{};
  clock.clock = 1'000'000'000'000ull;  // 1000 s, far from a new VM's clock
  auto set_clock = vm.set_clock(clock);
  ASSERT_TRUE(set_clock) << set_clock.error().message;

  auto saved = kvm::save_vm_state(vm);
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_NE(saved->pic_master.chip.pic.irr & (1u << 3), 0u);
  EXPECT_GE(saved->clock.clock, clock.clock);

  GuestMemory other_memory;
  auto target = make_guest(other_memory, {.irqchip = true});
  ASSERT_TRUE(target) << target.error().message;
  auto fresh = target->vm->get_clock();
  ASSERT_TRUE(fresh) << fresh.error().message;
  ASSERT_LT(fresh->clock, clock.clock);  // else the check below proves nothing

  auto restored = kvm::restore_vm_state(*target->vm, *saved);
  ASSERT_TRUE(restored) << restored.error().message;
  auto again = kvm::save_vm_state(*target->vm);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->pic_master.chip.pic.irr, saved->pic_master.chip.pic.irr);
  EXPECT_EQ(again->pic_master.chip.pic.imr, saved->pic_master.chip.pic.imr);
  EXPECT_EQ(again->pic_slave.chip.pic.irr, saved->pic_slave.chip.pic.irr);
  EXPECT_EQ(again->ioapic.chip.ioapic.irr, saved->ioapic.chip.ioapic.irr);
  for (int pin = 0; pin < KVM_IOAPIC_NUM_PINS; ++pin) {
    EXPECT_EQ(again->ioapic.chip.ioapic.redirtbl[pin].bits,
              saved->ioapic.chip.ioapic.redirtbl[pin].bits);
  }
  EXPECT_EQ(again->pit.channels[0].count, 0x1234u);
  EXPECT_EQ(again->pit.channels[0].mode, 2);
  EXPECT_GE(again->clock.clock, saved->clock.clock);
}

TEST(KvmState, XsaveBufferMatchesTheAdvertisedSize) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;
  if (!guest->vcpu->has_xsave()) GTEST_SKIP() << "host has no KVM_CAP_XSAVE";
  auto xsave = guest->vcpu->get_xsave();
  ASSERT_TRUE(xsave) << xsave.error().message;
  EXPECT_EQ(xsave->size(), guest->vcpu->xsave_size());
  EXPECT_GE(xsave->size(), 4096u);
  auto set = guest->vcpu->set_xsave(*xsave);
  ASSERT_TRUE(set) << set.error().message;
  auto too_short = guest->vcpu->set_xsave(std::span<const uint8_t>(xsave->data(), 100));
  ASSERT_FALSE(too_short);
  EXPECT_NE(too_short.error().message.find("KVM_SET_XSAVE vcpu 0 size 100"), std::string::npos);
}

}  // namespace
}  // namespace godwit::test
