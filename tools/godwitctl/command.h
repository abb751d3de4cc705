// The shape of a godwitctl command: its words, help text, options and the
// function that runs it. New commands (migrate, migrate-status, snapshot ...)
// are one more entry in command_table().
#pragma once

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "tools/godwitctl/api_client.h"

namespace godwit::ctl {

/// godwitctl's exit statuses.
enum ExitCode : int {
  kExitOk = 0,           ///< the command succeeded
  kExitRefused = 1,      ///< the VMM refused the request (or its result could not be saved)
  kExitUsage = 2,        ///< bad command line
  kExitUnreachable = 3,  ///< the API socket could not be reached
};

/// What a running command may use.
struct CommandContext {
  ApiClient& client;
  std::ostream& out;      ///< results
  std::ostream& err;      ///< diagnostics ("godwitctl: ...")
  bool json = false;      ///< print the VMM's JSON instead of text
  bool terminal = false;  ///< `out` is a terminal (for progress bars)
};

/// A usage error raised by a command after option parsing (exit status 2).
struct UsageError {
  std::string message;
};

/// One command of the table.
struct Command {
  std::vector<std::string> words;  ///< e.g. {"memory", "read"}
  std::string synopsis;            ///< arguments after the words, e.g. "--gpa ADDR --len N"
  std::string summary;             ///< one line for the overall help
  std::string description;         ///< paragraph for the command's own help
  /// Adds the command's options (may be empty).
  std::function<void(boost::program_options::options_description&)> add_options;
  /// Runs the command and returns its exit status.
  std::function<int(CommandContext&, const boost::program_options::variables_map&)> run;
  /// True for commands that work on files only and need no API socket.
  bool offline = false;
  /// Name of the command's one positional argument (e.g. "uri" for `migrate URI`), read as
  /// the hidden option of that name; empty when the command takes none. Name it in `synopsis`.
  std::string positional = {};
};

/// Every command godwitctl knows, in help order.
[[nodiscard]] const std::vector<Command>& command_table();

/// The words of a command joined with spaces ("memory read").
[[nodiscard]] std::string command_name(const Command& command);

/// Sends a request and turns transport failures and non-2xx answers into printed errors:
/// returns the reply on 2xx, otherwise prints and sets `exit_code` (1 refused, 3 unreachable).
[[nodiscard]] std::optional<HttpReply> call_api(CommandContext& context, std::string_view method,
                                                std::string_view target, int& exit_code,
                                                std::string body = {});

}  // namespace godwit::ctl
