// The list of godwitctl commands. Add a command family by appending its
// entries here (e.g. append_migration_commands(table)).
#include "tools/godwitctl/command.h"
#include "tools/godwitctl/migrate_commands.h"
#include "tools/godwitctl/snapshot_commands.h"
#include "tools/godwitctl/vm_commands.h"

namespace godwit::ctl {

const std::vector<Command>& command_table() {
  static const std::vector<Command> table = [] {
    std::vector<Command> commands;
    append_vm_commands(commands);
    append_snapshot_commands(commands);
    append_migrate_commands(commands);
    return commands;
  }();
  return table;
}

}  // namespace godwit::ctl
