// The API's MigrationControl (vmm/api/migration_routes.h) over the engine:
// the source variant starts, reports and cancels migrations of this VM; the
// destination variant (godwit --incoming) only reports the incoming one.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/result.h"
#include "migration/engine.h"
#include "vmm/api/migration_routes.h"

namespace godwit {

/// PUT /migration/send, GET /migration/status, PUT /migration/cancel over a
/// MigrationSource. Errors: a bad request body or URI is 400 (EINVAL); a
/// migration already running, nothing to cancel or too late to cancel is 409.
class SourceMigrationControl final : public api::MigrationControl {
 public:
  /// Checked before a start (after the request parsed); its error is answered as is.
  using StartCheck = std::function<Result<void>()>;

  explicit SourceMigrationControl(migration::MigrationSource& engine, StartCheck check = {})
      : engine_(engine), check_(std::move(check)) {}

  [[nodiscard]] Result<nlohmann::json> start(const nlohmann::json& request) override;
  [[nodiscard]] nlohmann::json status() override;
  [[nodiscard]] Result<nlohmann::json> cancel() override;

 private:
  migration::MigrationSource& engine_;
  StartCheck check_;
};

/// The status of an incoming migration; start and cancel are refused (409):
/// this VMM is the destination, and the source decides about cancelling.
/// Once the guest runs here, hand_over() passes start and cancel on to a
/// source control (the VM may migrate on); status stays the incoming one
/// until an outgoing migration has started.
class DestinationMigrationControl final : public api::MigrationControl {
 public:
  explicit DestinationMigrationControl(migration::MigrationDestination& engine) : engine_(engine) {}

  [[nodiscard]] Result<nlohmann::json> start(const nlohmann::json& request) override;
  [[nodiscard]] nlohmann::json status() override;
  [[nodiscard]] Result<nlohmann::json> cancel() override;

  /// From any thread, once: `source` serves start and cancel from now on.
  /// It must outlive the API server.
  void hand_over(api::MigrationControl& source) { source_.store(&source); }

 private:
  migration::MigrationDestination& engine_;
  std::atomic<api::MigrationControl*> source_{nullptr};
};

}  // namespace godwit
