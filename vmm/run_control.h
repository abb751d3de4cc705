// Run control shared by the vCPU threads: pause / resume / stop requests and
// the handshake that tells the requester when every vCPU has left KVM_RUN.
//
//   requester                         vCPU thread
//   ---------                         -----------
//   request_pause(): flag = pause
//   kick each vCPU  ───────────────▶  KVM_RUN returns EINTR (immediate_exit)
//                                     park(): parked++, wait while pause
//   wait_parked() returns             ...
//   request_resume(): flag = run ──▶  parked--, back to KVM_RUN
//
// A vCPU parks only after KVM_RUN returned "interrupted", so a pending PIO or
// MMIO exit is always completed by KVM before the vCPU state is read.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace godwit {

/// Shared pause/stop state of all vCPU threads of one VM.
class RunControl {
 public:
  explicit RunControl(uint32_t vcpus) : vcpus_(vcpus) {}

  /// Asks every vCPU to park (the caller must also kick them).
  void request_pause();
  /// Releases parked vCPUs.
  void request_resume();
  /// Asks every vCPU thread to exit (the caller must also kick them).
  void request_stop();
  /// Blocks until every live vCPU thread is parked (or has exited).
  void wait_parked();

  /// True when the vCPU should not re-enter KVM_RUN (pause or stop pending).
  [[nodiscard]] bool should_leave_run() const;
  /// Called by a vCPU thread when it must leave KVM_RUN: parks while paused.
  /// Returns false when the thread must exit.
  [[nodiscard]] bool park();
  /// Called by a vCPU thread as it exits for any reason.
  void thread_exited();

  [[nodiscard]] bool stop_requested() const;
  [[nodiscard]] bool pause_requested() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint32_t vcpus_;
  uint32_t parked_ = 0;
  uint32_t exited_ = 0;
  bool pause_ = false;
  bool stop_ = false;
};

}  // namespace godwit
