// RunControl implementation (see the diagram in run_control.h).
#include "vmm/run_control.h"

namespace godwit {

void RunControl::request_pause() {
  std::lock_guard lock(mu_);
  pause_ = true;
}

void RunControl::request_resume() {
  std::lock_guard lock(mu_);
  pause_ = false;
  cv_.notify_all();
}

void RunControl::request_stop() {
  std::lock_guard lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

void RunControl::wait_parked() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stop_ || parked_ + exited_ >= vcpus_; });
}

bool RunControl::should_leave_run() const {
  std::lock_guard lock(mu_);
  return pause_ || stop_;
}

bool RunControl::park() {
  std::unique_lock lock(mu_);
  if (stop_) return false;
  if (!pause_) return true;
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return !pause_ || stop_; });
  --parked_;
  return !stop_;
}

void RunControl::thread_exited() {
  std::lock_guard lock(mu_);
  ++exited_;
  cv_.notify_all();
}

bool RunControl::stop_requested() const {
  std::lock_guard lock(mu_);
  return stop_;
}

bool RunControl::pause_requested() const {
  std::lock_guard lock(mu_);
  return pause_;
}

}  // namespace godwit
