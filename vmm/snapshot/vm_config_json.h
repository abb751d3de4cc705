// The VM configuration as it is stored in a snapshot manifest ("vm"): what
// the restored VM must be built with. Console and API socket are not part of
// it (they belong to the restoring process's command line).
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/config.h"

namespace godwit {

/// `config` as JSON (memory, backing, vCPUs, boot, guest params, devices).
[[nodiscard]] nlohmann::json vm_config_to_json(const VmConfig& config);
/// The inverse, checking every field; errors name the field.
[[nodiscard]] Result<VmConfig> vm_config_from_json(const nlohmann::json& json);

}  // namespace godwit
