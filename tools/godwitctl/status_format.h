// Human-readable rendering of the GET /vm document for `godwitctl status`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace godwit::ctl {

/// Renders the VM info: state, vCPUs, memory size and regions, then any other keys as
/// "key: value". Tolerates missing or unexpected keys.
[[nodiscard]] std::string format_vm_status(const nlohmann::json& info);

/// "1 GiB", "512 MiB", "4 KiB", "1000 B": the largest binary unit that divides exactly,
/// else one decimal ("1.5 GiB").
[[nodiscard]] std::string human_size(uint64_t bytes);

}  // namespace godwit::ctl
