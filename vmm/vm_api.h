// The VMM side of the REST API: implements api::VmControl on a Machine.
#pragma once

#include <functional>

#include "vmm/api/vm_control.h"
#include "vmm/machine.h"

namespace godwit {

/// Adapts a Machine to the API's VmControl interface.
class MachineApi : public api::VmControl {
 public:
  /// Serves PUT /vm/snapshot (set by the binary, which links the snapshot code).
  using SnapshotHandler = std::function<Result<nlohmann::json>(const nlohmann::json&)>;

  /// Says whether the API may pause or resume the vCPUs now (an error says
  /// why not); set by the binary while a live migration owns them.
  using RunGuard = std::function<Result<void>()>;

  explicit MachineApi(Machine& machine, SnapshotHandler snapshot = {})
      : machine_(machine), snapshot_(std::move(snapshot)) {}

  /// Installs the guard consulted by pause() and resume().
  void set_run_guard(RunGuard guard) { run_guard_ = std::move(guard); }

  nlohmann::json info() override { return machine_.info(); }
  [[nodiscard]] Result<void> pause() override;
  [[nodiscard]] Result<void> resume() override;
  [[nodiscard]] Result<void> shutdown() override;
  [[nodiscard]] Result<std::vector<uint8_t>> read_memory(uint64_t gpa, uint64_t len) override;
  [[nodiscard]] Result<nlohmann::json> snapshot(const nlohmann::json& request) override;

 private:
  Machine& machine_;
  SnapshotHandler snapshot_;
  RunGuard run_guard_;
};

}  // namespace godwit
