// The /migration routes: JSON in, JSON out, errors mapped as vm_control.h
// documents (default 409).
#include "vmm/api/migration_routes.h"

#include "vmm/api/vm_control.h"

namespace godwit::api {
namespace {

/// 202 Accepted: the request started (or asked for) something that finishes later.
constexpr int kAccepted = 202;
constexpr int kDefaultErrorStatus = 409;

Response accepted_or_error(const Result<nlohmann::json>& result) {
  if (!result) {
    return Response::error(http_status_for(result.error(), kDefaultErrorStatus),
                           result.error().message);
  }
  return Response::json(kAccepted, *result);
}

Response send(MigrationControl& migration, const Request& request) {
  auto body = request.json();
  if (!body) return Response::error(400, body.error().message);
  return accepted_or_error(migration.start(*body));
}

}  // namespace

void register_migration_routes(Router& router, MigrationControl& migration) {
  router.put("/migration/send", [&migration](const Request& r) { return send(migration, r); });
  router.get("/migration/status",
             [&migration](const Request&) { return Response::json(200, migration.status()); });
  router.put("/migration/cancel",
             [&migration](const Request&) { return accepted_or_error(migration.cancel()); });
}

}  // namespace godwit::api
