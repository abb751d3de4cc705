// MigrationControl over MigrationSource / MigrationDestination.
#include "vmm/migration/migration_control.h"

#include <cerrno>

#include "migration/status_json.h"
#include "migration/transport.h"
#include "vmm/api/vm_control.h"

namespace godwit {

Result<nlohmann::json> SourceMigrationControl::start(const nlohmann::json& request) {
  const migration::SendOptions options = TRY(migration::parse_send_request(request));
  // The engine checks the address too, but its error carries no errno; a
  // malformed URI is the caller's mistake (400), not a conflict.
  if (auto address = migration::parse_address(options.uri); !address)
    return api::vm_bad_request("invalid \"uri\": " + address.error().message);
  if (check_) TRY_VOID(check_());
  TRY_VOID(engine_.start(options));
  return migration::to_json(engine_.status());
}

nlohmann::json SourceMigrationControl::status() { return migration::to_json(engine_.status()); }

Result<nlohmann::json> SourceMigrationControl::cancel() {
  TRY_VOID(engine_.cancel());
  return migration::to_json(engine_.status());
}

Result<nlohmann::json> DestinationMigrationControl::start(const nlohmann::json& request) {
  if (api::MigrationControl* source = source_.load()) return source->start(request);
  return api::vm_conflict(
      "this godwit is the destination of an incoming migration (--incoming); it cannot send "
      "one until the incoming migration has finished and a new godwit runs the VM");
}

nlohmann::json DestinationMigrationControl::status() {
  if (api::MigrationControl* source = source_.load()) {
    nlohmann::json outgoing = source->status();
    if (outgoing.value("state", std::string("none")) != "none") return outgoing;
  }
  return migration::to_json(engine_.status());
}

Result<nlohmann::json> DestinationMigrationControl::cancel() {
  if (api::MigrationControl* source = source_.load()) return source->cancel();
  return api::vm_conflict(
      "this godwit is the destination of an incoming migration: cancel it on the source "
      "(godwitctl migrate-cancel there); stopping this process also fails it");
}

}  // namespace godwit
