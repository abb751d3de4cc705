// The machine: one VM built from a VmConfig — guest memory and its KVM
// slots, the in-kernel irqchip and PIT, the legacy devices on the PIO and
// MMIO buses, the boot vCPU set up by a loader, and one thread per vCPU.
// It owns the run state (created / running / paused / shutdown); every
// state change takes the VM control lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "kvm/system.h"
#include "kvm/vcpu.h"
#include "kvm/vcpu_state.h"
#include "kvm/vm.h"
#include "kvm/vm_state.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"
#include "vmm/exit_handler.h"
#include "vmm/platform_devices.h"
#include "vmm/run_control.h"
#include "vmm/vcpu_thread.h"
#include "vmm/virtio_devices.h"

namespace godwit {

/// Run states reported by the API (strings, never ordinals).
enum class RunState { created, running, paused, shutdown };
/// "created", "running", "paused" or "shutdown".
const char* to_string(RunState s);

/// Everything needed to continue a paused VM elsewhere: vCPUs, VM-wide KVM
/// state, device state and a copy of guest RAM (one buffer per region).
struct MachineState {
  kvm::VmState vm;
  std::vector<kvm::VcpuState> vcpus;
  PlatformDevicesState devices;
  std::vector<virtio::MmioTransportState> virtio;  ///< one per virtio device, in order
  std::vector<std::vector<uint8_t>> memory;
};

/// Process exit status used when the VM stops because of a fatal guest or
/// VMM error (triple fault, emulation failure, KVM error).
inline constexpr int kFatalExitStatus = 125;

/// Whether Machine::create loads the boot source.
enum class BootMode { load, skip };
/// Whether Machine::start lets the vCPUs run or leaves them parked (paused).
enum class StartMode { running, paused };
/// Whether Machine::save_state copies guest RAM into MachineState::memory
/// (snapshots and migration write RAM on their own and skip the copy).
enum class MemoryCopy { include, skip };

/// One VM and its vCPU threads.
class Machine : public ExitDispatch {
 public:
  /// Builds the VM from `config`. With BootMode::skip nothing is loaded and
  /// the vCPUs keep KVM's reset state (restore_state fills them instead).
  [[nodiscard]] static Result<std::unique_ptr<Machine>> create(const VmConfig& config,
                                                               BootMode boot = BootMode::load);
  ~Machine() override;

  /// Starts the vCPU threads (created -> running, or created -> paused with
  /// StartMode::paused: the threads park before their first KVM_RUN).
  [[nodiscard]] Result<void> start(StartMode mode = StartMode::running);
  /// Stops every vCPU outside KVM_RUN (running -> paused). Not from a vCPU thread.
  [[nodiscard]] Result<void> pause();
  /// Lets the vCPUs run again (paused -> running).
  [[nodiscard]] Result<void> resume();
  /// Stops the VM for good with the given process exit status and reason.
  /// Safe from any thread, including vCPU threads; does not wait.
  void request_stop(int exit_status, const std::string& reason);
  /// Blocks until the VM stopped, joins the vCPU threads, returns the status.
  int wait_stopped();

  /// Saves the whole VM (paused or created); RAM only with MemoryCopy::include.
  [[nodiscard]] Result<MachineState> save_state(MemoryCopy memory = MemoryCopy::include);
  /// Loads a saved VM into this one (created or paused; same layout). An
  /// empty `state.memory` leaves guest RAM alone (it was loaded separately).
  [[nodiscard]] Result<void> restore_state(const MachineState& state);

  /// Turns KVM dirty logging (KVM_MEM_LOG_DIRTY_PAGES) on or off for every
  /// RAM slot. Turning it on starts from a clean log: the next
  /// KVM_GET_DIRTY_LOG of a slot reports the pages written since.
  [[nodiscard]] Result<void> set_dirty_logging(bool on);
  /// True while dirty logging is on.
  [[nodiscard]] bool dirty_logging() const { return dirty_logging_; }
  /// The guest TSC rate in kHz (KVM_GET_TSC_KHZ of vCPU 0).
  [[nodiscard]] Result<uint32_t> tsc_khz() const;
  /// Sets the guest TSC rate of every vCPU (KVM_SET_TSC_KHZ); fails when the
  /// host cannot scale the TSC to `khz`. Call before restore_state.
  [[nodiscard]] Result<void> set_tsc_khz(uint32_t khz);

  [[nodiscard]] RunState state() const;
  /// Why the VM stopped (empty while it runs).
  [[nodiscard]] std::string stop_reason() const;
  /// The API's view: state, config, vCPUs, memory layout, devices.
  [[nodiscard]] nlohmann::json info() const;
  [[nodiscard]] GuestMemory& memory() { return *memory_; }
  [[nodiscard]] const VmConfig& config() const { return config_; }
  [[nodiscard]] kvm::Vm& vm() { return *vm_; }
  [[nodiscard]] PlatformDevices& devices() { return *devices_; }

  // ExitDispatch: forwards to the PIO and MMIO buses.
  void pio_in(uint16_t port, std::span<uint8_t> data) override;
  void pio_out(uint16_t port, std::span<const uint8_t> data) override;
  void mmio_read(uint64_t addr, std::span<uint8_t> data) override;
  void mmio_write(uint64_t addr, std::span<const uint8_t> data) override;

 private:
  explicit Machine(const VmConfig& config);
  [[nodiscard]] Result<void> build(BootMode boot);
  [[nodiscard]] Result<void> setup_memory();
  [[nodiscard]] Result<void> setup_vcpus();
  [[nodiscard]] Result<void> load_boot_source();
  /// Creates the virtio devices and the device tree that describes them.
  [[nodiscard]] Result<void> setup_virtio();
  void kick_all();
  void on_vcpu_stop(ExitAction action, const std::string& reason);

  VmConfig config_;
  std::unique_ptr<kvm::System> kvm_;
  std::unique_ptr<kvm::Vm> vm_;
  std::unique_ptr<GuestMemory> memory_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::vector<uint32_t> msr_indices_;
  std::unique_ptr<PlatformDevices> devices_;
  std::unique_ptr<VirtioDevices> virtio_;  // after devices_: destroyed first
  std::vector<uint8_t> dtb_;               // the flattened device tree of this machine
  std::string virtio_cmdline_;             // the same devices as virtio_mmio.device= items
  RunControl control_;
  std::vector<std::unique_ptr<VcpuThread>> threads_;

  mutable std::mutex mu_;  // the VM control lock: run state and stop info
  std::condition_variable stopped_cv_;
  RunState state_ = RunState::created;
  int exit_status_ = 0;
  std::string stop_reason_;
  bool joined_ = false;
  bool dirty_logging_ = false;  // changed only while paused or created (API thread)
};

}  // namespace godwit
