// The VMM side of the REST API: implements api::VmControl on a Machine.
#pragma once

#include "vmm/api/vm_control.h"
#include "vmm/machine.h"

namespace godwit {

/// Adapts a Machine to the API's VmControl interface.
class MachineApi : public api::VmControl {
 public:
  explicit MachineApi(Machine& machine) : machine_(machine) {}

  nlohmann::json info() override { return machine_.info(); }
  [[nodiscard]] Result<void> pause() override;
  [[nodiscard]] Result<void> resume() override;
  [[nodiscard]] Result<void> shutdown() override;
  [[nodiscard]] Result<std::vector<uint8_t>> read_memory(uint64_t gpa, uint64_t len) override;

 private:
  Machine& machine_;
};

}  // namespace godwit
