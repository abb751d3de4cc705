// The VM configuration as given on godwit's command line, parsed and
// validated into one value. Parsing is pure (no KVM, no files opened) so
// that every bad-input message is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit {

/// Where the serial console goes.
struct SerialConfig {
  enum class Kind { stdout_, file, unix_socket, none };
  Kind kind = Kind::stdout_;
  std::string path;  ///< for file and unix_socket
};

/// Boot from a kernel (bzImage or ELF, detected by content).
struct KernelBoot {
  std::string kernel;
  std::string initrd;  ///< empty: none
  std::string cmdline;
};
/// Boot from a raw image: the unparsed --image spec ("FILE[,load=..][,entry=..][,mode=..]").
struct ImageBoot {
  std::string spec;
};

/// Everything needed to build a VM.
struct VmConfig {
  uint64_t memory_size = 0;
  MemoryBacking backing = MemoryBacking::memfd;
  std::string hugetlbfs_dir;
  uint32_t vcpus = 1;
  std::string api_sock;  ///< empty: no API server
  SerialConfig serial;
  std::variant<KernelBoot, ImageBoot> boot;
  std::vector<std::string> guest_params;  ///< "NAME.KEY=VALUE" items
};

/// Parses a size such as "512M", "1G", "1536m", "4096" (bytes), "2GiB".
[[nodiscard]] Result<uint64_t> parse_size(const std::string& text);
/// Parses "stdout", "none", "file:PATH" or "unix:PATH".
[[nodiscard]] Result<SerialConfig> parse_serial(const std::string& text);

/// Outcome of parsing argv: a config to run, or text to print and exit with.
struct ParsedCommandLine {
  std::optional<VmConfig> config;
  std::string message;  ///< --help / --version text
};

/// Parses godwit's argv with Boost.Program_options and validates it.
[[nodiscard]] Result<ParsedCommandLine> parse_command_line(int argc, const char* const* argv);

}  // namespace godwit
