// godwitctl's entry point as a library function, so tests run the real
// command-line logic in-process with their own streams and environment.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace godwit::ctl {

/// The environment godwitctl reads.
struct CliEnvironment {
  std::optional<std::string> api_sock;  ///< $GODWIT_API_SOCK
  bool terminal = false;                ///< stdout is a terminal
};

/// Runs godwitctl with `args` (without the program name); returns the exit status
/// (see ExitCode in command.h). Never throws.
[[nodiscard]] int run_godwitctl(const std::vector<std::string>& args, std::ostream& out,
                                std::ostream& err, const CliEnvironment& environment);

}  // namespace godwit::ctl
