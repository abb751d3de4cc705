// The live-migration routes and the interface the VMM implements behind them.
// This layer only moves JSON: the status document and the send request are
// defined by migration/status_json.h (godwit_api does not link
// godwit_migration), and the VMM's MigrationControl converts.
//
//   PUT /migration/send    body: send request   -> 202 + status document
//   GET /migration/status                       -> 200 + status document
//   PUT /migration/cancel                       -> 202 + status document
//
// Errors follow vm_control.h's mapping (http_status_for) with 409 as the
// default: a plain fail("...") is 409 (a migration is already running,
// nothing to cancel, cancel refused in postcopy (R8)); vm_bad_request (EINVAL,
// e.g. parse_send_request's errors) is 400; ENOSYS 501; other errnos 500.
// A send body that is not JSON is a 400 before the VMM sees it.
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/api/router.h"

namespace godwit::api {

/// What the VMM exposes for migration. Called on the API server's thread:
/// every method returns promptly (the migration itself runs elsewhere).
class MigrationControl {
 public:
  virtual ~MigrationControl() = default;
  /// PUT /migration/send body; starts a migration in the background and returns the status JSON.
  [[nodiscard]] virtual Result<nlohmann::json> start(const nlohmann::json& request) = 0;
  /// GET /migration/status.
  [[nodiscard]] virtual nlohmann::json status() = 0;
  /// PUT /migration/cancel; returns the status JSON.
  [[nodiscard]] virtual Result<nlohmann::json> cancel() = 0;
};

/// Registers PUT /migration/send, GET /migration/status and PUT /migration/cancel.
/// `migration` must outlive the server that serves `router`.
void register_migration_routes(Router& router, MigrationControl& migration);

}  // namespace godwit::api
