// Getting a vCPU out of KVM_RUN: immediate_exit returns Interrupted without
// running the guest, and a signal sent from another thread interrupts a
// guest spinning in `jmp $`.
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>
#include <variant>

#include "kvm/exit.h"
#include "kvm_test_guest.h"
#include "test_util.h"

namespace godwit::test {
namespace {

const uint8_t kOutThenSpin[] = {
    0xE6, 0x10,  // out 0x10, al
    0xEB, 0xFE,  // jmp $
};

TEST(KvmInterrupt, ImmediateExitReturnsInterruptedWithoutRunning) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  memory.load(kOutThenSpin);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;

  guest->vcpu->set_immediate_exit(true);
  auto exit = guest->vcpu->run();
  ASSERT_TRUE(exit) << exit.error().message;
  EXPECT_TRUE(std::holds_alternative<kvm::Interrupted>(*exit)) << kvm::describe(*exit);
  auto regs = guest->vcpu->get_regs();
  ASSERT_TRUE(regs) << regs.error().message;
  EXPECT_EQ(regs->rip, kEntry);  // not one instruction ran

  guest->vcpu->set_immediate_exit(false);
  exit = guest->vcpu->run();
  ASSERT_TRUE(exit) << exit.error().message;
  EXPECT_TRUE(std::holds_alternative<kvm::IoOut>(*exit)) << kvm::describe(*exit);
}

void ignore_signal(int) {}

TEST(KvmInterrupt, SignalKickInterruptsASpinningGuest) {
  GODWIT_REQUIRE_KVM();
  GuestMemory memory;
  memory.load(kOutThenSpin);
  auto guest = make_guest(memory);
  ASSERT_TRUE(guest) << guest.error().message;

  // A handler without SA_RESTART, so the signal makes KVM_RUN return EINTR.
  struct sigaction action {};
  action.sa_handler = ignore_signal;
  struct sigaction previous {};
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &previous), 0);

  std::atomic<bool> spinning{false};
  std::atomic<bool> done{false};
  kvm::VcpuExit first{kvm::Unknown{0}};
  kvm::VcpuExit second{kvm::Unknown{0}};
  std::string error;
  std::thread runner([&] {
    auto exit = guest->vcpu->run();  // up to the out
    if (!exit) {
      error = exit.error().message;
    } else {
      first = *exit;
      spinning = true;
      exit = guest->vcpu->run();  // spins until kicked
      if (exit)
        second = *exit;
      else
        error = exit.error().message;
    }
    done = true;
  });
  // A signal that lands before KVM_RUN is entered is lost, so kick until the
  // runner is out (each kick is harmless).
  while (!done) {
    if (spinning) ::pthread_kill(runner.native_handle(), SIGUSR1);
    ::poll(nullptr, 0, 1);
  }
  runner.join();
  ::sigaction(SIGUSR1, &previous, nullptr);

  ASSERT_TRUE(error.empty()) << error;
  EXPECT_TRUE(std::holds_alternative<kvm::IoOut>(first)) << kvm::describe(first);
  EXPECT_TRUE(std::holds_alternative<kvm::Interrupted>(second)) << kvm::describe(second);
  auto regs = guest->vcpu->get_regs();
  ASSERT_TRUE(regs) << regs.error().message;
  EXPECT_EQ(regs->rip, kEntry + 2);  // parked on the jmp $
}

}  // namespace
}  // namespace godwit::test
