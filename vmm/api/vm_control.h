// The interface the VMM implements so the API can inspect and control the VM,
// and the /vm routes built on it.
//
// Error mapping (how a VmControl implementation picks the HTTP status): the
// message of the returned Error becomes {"error": message}; the status comes
// from Error::code, an errno value:
//   code 0 (plain fail("..."))  -> the route's default: 409 Conflict for pause /
//                                  resume / shutdown (the VM is in the wrong
//                                  state), 400 Bad Request for memory reads;
//   EBUSY, EALREADY             -> 409 Conflict (use vm_conflict("..."));
//   EINVAL, ERANGE, EFAULT      -> 400 Bad Request (use vm_bad_request("..."));
//   ENOSYS                      -> 501 Not Implemented;
//   any other errno             -> 500 (a real failure, e.g. an ioctl error).
#pragma once

#include <cerrno>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/number.h"
#include "base/result.h"
#include "vmm/api/router.h"

namespace godwit::api {

/// What the VMM exposes to the API. Every method is called on the API server's thread and
/// must return quickly (pause may wait for vCPUs to stop, but not for the guest).
class VmControl {
 public:
  virtual ~VmControl() = default;

  /// The VM description served by GET /vm. godwitctl understands these keys (all optional,
  /// unknown keys are shown as they are):
  ///   "state": "running" | "paused" | "shutdown" | ... ,
  ///   "vcpus": <count>,
  ///   "memory": {"size_bytes": N, "backing": "memfd",
  ///              "regions": [{"gpa": N, "size": N}, ...]}
  virtual nlohmann::json info() = 0;
  /// Stops all vCPUs; the VM stays paused until resume().
  [[nodiscard]] virtual Result<void> pause() = 0;
  /// Restarts paused vCPUs.
  [[nodiscard]] virtual Result<void> resume() = 0;
  /// Stops the VM for good (the VMM process then exits).
  [[nodiscard]] virtual Result<void> shutdown() = 0;
  /// Copies `len` bytes of guest memory at guest-physical address `gpa`.
  [[nodiscard]] virtual Result<std::vector<uint8_t>> read_memory(uint64_t gpa, uint64_t len) = 0;
  /// Writes a snapshot of the paused VM as the JSON `request` asks
  /// ({"dir": "/abs/path", "type": "full" | "diff"}); returns the report
  /// (docs/api.md). Blocks the API thread while it writes.
  [[nodiscard]] virtual Result<nlohmann::json> snapshot(const nlohmann::json& request) {
    (void)request;
    return fail("snapshots are not available from this VMM", ENOSYS);
  }
};

/// An error that maps to 409 Conflict (the VM is in the wrong state for the request).
inline std::unexpected<Error> vm_conflict(std::string message) {
  return fail(std::move(message), EBUSY);
}
/// An error that maps to 400 Bad Request (the request's arguments are wrong).
inline std::unexpected<Error> vm_bad_request(std::string message) {
  return fail(std::move(message), EINVAL);
}

/// The HTTP status for a VmControl error on a route whose default is `default_status`.
[[nodiscard]] int http_status_for(const Error& error, int default_status);

/// The largest GET /vm/memory read (256 MiB).
inline constexpr uint64_t kMaxMemoryReadBytes = uint64_t{256} << 20;

/// Registers GET /vm, PUT /vm/pause, PUT /vm/resume, PUT /vm/shutdown, GET /vm/memory and
/// PUT /vm/snapshot.
/// `vm` must outlive the server that serves `router`.
void register_vm_routes(Router& router, VmControl& vm);

/// Query numbers are parsed by base/number.h (decimal or 0x hex).
using ::godwit::parse_u64;

}  // namespace godwit::api
