// MachineApi: maps API requests to Machine operations and picks the HTTP
// status of each failure (wrong state -> 409, bad arguments -> 400).
#include "vmm/vm_api.h"

namespace godwit {

Result<void> MachineApi::pause() {
  if (run_guard_) TRY_VOID(run_guard_());
  auto r = machine_.pause();
  if (!r) return api::vm_conflict(r.error().message);
  return {};
}

Result<void> MachineApi::resume() {
  if (run_guard_) TRY_VOID(run_guard_());
  auto r = machine_.resume();
  if (!r) return api::vm_conflict(r.error().message);
  return {};
}

Result<void> MachineApi::shutdown() {
  if (machine_.state() == RunState::shutdown) return api::vm_conflict("VM is already shut down");
  machine_.request_stop(0, "shutdown requested through the API");
  return {};
}

Result<std::vector<uint8_t>> MachineApi::read_memory(uint64_t gpa, uint64_t len) {
  std::vector<uint8_t> out(len);
  auto r = machine_.memory().read(gpa, out);
  if (!r) return api::vm_bad_request(r.error().message);
  return out;
}

Result<nlohmann::json> MachineApi::snapshot(const nlohmann::json& request) {
  if (!snapshot_) return api::VmControl::snapshot(request);
  return snapshot_(request);
}

}  // namespace godwit
