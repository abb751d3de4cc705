// The snapshot commands of godwitctl: create (through the API), and the
// offline ones that work on snapshot directories (info, merge).
#pragma once

#include <vector>

#include "tools/godwitctl/command.h"

namespace godwit::ctl {

/// Adds snapshot create, snapshot info and snapshot merge to `table`.
void append_snapshot_commands(std::vector<Command>& table);

}  // namespace godwit::ctl
