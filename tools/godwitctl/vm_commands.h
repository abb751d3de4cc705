// The VM lifecycle and inspection commands of godwitctl.
#pragma once

#include <vector>

#include "tools/godwitctl/command.h"

namespace godwit::ctl {

/// Adds status, pause, resume, shutdown and memory read to `table`.
void append_vm_commands(std::vector<Command>& table);

}  // namespace godwit::ctl
