// One thread per vCPU running the KVM_RUN loop: run, handle the exit, and
// park or leave when the RunControl asks. Kicks use immediate_exit plus a
// signal, so a vCPU spinning in guest code or blocked waiting for a SIPI
// leaves KVM_RUN promptly.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "kvm/vcpu.h"
#include "vmm/exit_handler.h"
#include "vmm/run_control.h"

namespace godwit {

/// The KVM_RUN loop of one vCPU on its own thread.
class VcpuThread {
 public:
  /// Called (on the vCPU thread) when the guest stops the VM: a fatal exit
  /// or a shutdown request; `reason` says why.
  using StopCallback = std::function<void(ExitAction, const std::string& reason)>;

  VcpuThread(kvm::Vcpu& vcpu, RunControl& control, ExitDispatch& dispatch, StopCallback on_stop);
  ~VcpuThread();
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;

  /// Starts the thread (named "vcpuN").
  void start();
  /// Forces the vCPU out of KVM_RUN soon (safe from any thread).
  void kick();
  /// Waits for the thread to exit (after RunControl::request_stop + kick).
  void join();

  /// Installs the no-op handler of the kick signal (idempotent).
  static void install_kick_signal();

 private:
  void loop();
  std::string describe_registers();

  kvm::Vcpu& vcpu_;
  RunControl& control_;
  ExitDispatch& dispatch_;
  StopCallback on_stop_;
  std::thread thread_;
};

}  // namespace godwit
