// VcpuThread: the per-vCPU KVM_RUN loop.
#include "vmm/vcpu_thread.h"

#include <pthread.h>
#include <signal.h>

#include <cinttypes>
#include <cstdio>
#include <mutex>

#include "base/log.h"

namespace godwit {
namespace {

int kick_signal() { return SIGRTMIN; }

void kick_handler(int) {}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

}  // namespace

void VcpuThread::install_kick_signal() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kick_signal(), &sa, nullptr);
  });
}

VcpuThread::VcpuThread(kvm::Vcpu& vcpu, RunControl& control, ExitDispatch& dispatch,
                       StopCallback on_stop)
    : vcpu_(vcpu), control_(control), dispatch_(dispatch), on_stop_(std::move(on_stop)) {}

VcpuThread::~VcpuThread() {
  if (thread_.joinable()) {
    control_.request_stop();
    kick();
    thread_.join();
  }
}

void VcpuThread::start() {
  install_kick_signal();
  thread_ = std::thread([this] { loop(); });
  std::string name = "vcpu" + std::to_string(vcpu_.id());
  pthread_setname_np(thread_.native_handle(), name.c_str());
}

void VcpuThread::kick() {
  vcpu_.set_immediate_exit(true);
  if (thread_.joinable()) pthread_kill(thread_.native_handle(), kick_signal());
}

void VcpuThread::join() {
  if (thread_.joinable()) thread_.join();
}

std::string VcpuThread::describe_registers() {
  auto regs = vcpu_.get_regs();
  auto sregs = vcpu_.get_sregs();
  if (!regs || !sregs) return " (registers unavailable)";
  const kvm_regs& r = *regs;
  const kvm_sregs& s = *sregs;
  return " [vcpu " + std::to_string(vcpu_.id()) + " rip=" + hex(r.rip) + " rsp=" + hex(r.rsp) +
         " rax=" + hex(r.rax) + " rbx=" + hex(r.rbx) + " rcx=" + hex(r.rcx) + " rdx=" + hex(r.rdx) +
         " rflags=" + hex(r.rflags) + " cs=" + hex(s.cs.selector) + "/base " + hex(s.cs.base) +
         " cr0=" + hex(s.cr0) + " cr3=" + hex(s.cr3) + " cr4=" + hex(s.cr4) +
         " efer=" + hex(s.efer) + "]";
}

void VcpuThread::loop() {
  // Block nothing: the kick signal must reach this thread.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  for (;;) {
    if (control_.should_leave_run()) {
      vcpu_.set_immediate_exit(false);
      if (!control_.park()) break;
      continue;
    }
    auto exit = vcpu_.run();
    if (!exit) {
      on_stop_(ExitAction::fatal, "vcpu " + std::to_string(vcpu_.id()) + ": " +
                                      exit.error().message + describe_registers());
      break;
    }
    ExitOutcome outcome = handle_exit(*exit, dispatch_);
    switch (outcome.action) {
      case ExitAction::reenter:
        break;
      case ExitAction::interrupted:
        // Clear the kick; if a pause or stop is pending the top of the loop
        // parks. A kick that raced with parking only costs one extra exit.
        vcpu_.set_immediate_exit(false);
        break;
      case ExitAction::fatal:
        on_stop_(outcome.action, outcome.reason + describe_registers());
        control_.thread_exited();
        return;
      case ExitAction::shutdown:
        on_stop_(outcome.action, outcome.reason);
        control_.thread_exited();
        return;
    }
  }
  control_.thread_exited();
}

}  // namespace godwit
