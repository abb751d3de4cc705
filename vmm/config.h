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

/// The version printed by --version and recorded in snapshots.
inline constexpr const char* kGodwitVersion = "0.1.0";
/// Most vCPUs a VM can have: APIC IDs 0..254 (255 is broadcast).
inline constexpr uint32_t kMaxVcpus = 254;

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

/// One --disk: a raw image behind a virtio-blk device.
struct DiskConfig {
  std::string path;
  bool readonly = false;  ///< readonly=on
  bool direct = false;    ///< direct=on: O_DIRECT
  std::string serial;     ///< serial=ID: the get-id answer (<= 20 bytes); empty: from the file name
};

/// One --net: a tap interface behind a virtio-net device.
struct NetConfig {
  std::string tap;  ///< tap=NAME
  std::string mac;  ///< mac=XX:XX:XX:XX:XX:XX; empty: 02:67:64:77:00:NN (NN = net index)
};

/// How a Linux guest learns about the virtio-mmio devices.
enum class VirtioDiscovery {
  dtb,      ///< the device tree as SETUP_DTB setup data (kernels with CONFIG_OF)
  cmdline,  ///< virtio_mmio.device=SIZE@ADDR:IRQ on the command line
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
  std::vector<std::string> guest_params;                    ///< "NAME.KEY=VALUE" items
  std::vector<DiskConfig> disks;                            ///< virtio-blk devices, in order
  std::vector<NetConfig> nets;                              ///< virtio-net devices, in order
  bool rng = false;                                         ///< one virtio-rng device
  VirtioDiscovery virtio_discovery = VirtioDiscovery::dtb;  ///< for --kernel boots
};

/// Parses a --disk value: "path=FILE[,readonly=on|off][,direct=on|off][,serial=ID]"
/// (a bare "FILE" is accepted as path).
[[nodiscard]] Result<DiskConfig> parse_disk(const std::string& text);
/// Parses a --net value: "tap=NAME[,mac=XX:XX:XX:XX:XX:XX]".
[[nodiscard]] Result<NetConfig> parse_net(const std::string& text);

/// Parses a size such as "512M", "1G", "1536m", "4096" (bytes), "2GiB".
[[nodiscard]] Result<uint64_t> parse_size(const std::string& text);
/// Parses "stdout", "none", "file:PATH" or "unix:PATH".
[[nodiscard]] Result<SerialConfig> parse_serial(const std::string& text);

/// How a restored VM gets its guest memory.
enum class RestoreMemory {
  eager,  ///< read every page before the vCPUs start
  lazy,   ///< map it empty and fill pages on demand (userfaultfd) plus a background prefetcher
};

/// `godwit --restore DIR`: the VM comes from a snapshot directory; only what
/// the snapshot does not fix is taken from the command line.
struct RestoreRequest {
  std::string dir;
  RestoreMemory memory = RestoreMemory::eager;
  bool paused = false;   ///< --paused: leave the VM paused (resume through the API)
  std::string api_sock;  ///< empty: no API server
  SerialConfig serial;
};

/// Outcome of parsing argv: a config to run, a snapshot to restore, or text
/// to print and exit with.
struct ParsedCommandLine {
  std::optional<VmConfig> config;
  std::optional<RestoreRequest> restore;
  /// --incoming tcp:HOST:PORT | unix:PATH: build `config` without loading a
  /// guest and receive the VM from a migration source (empty: no).
  std::string incoming;
  std::string message;  ///< --help / --version text
};

/// Checks the form of an --incoming address: "tcp:HOST:PORT" (HOST non-empty,
/// "[v6]" allowed, PORT 0..65535) or "unix:PATH" (PATH non-empty, at most 107
/// bytes). The migration transport parses it again when it listens.
[[nodiscard]] Result<void> check_incoming_address(const std::string& text);

/// Parses godwit's argv with Boost.Program_options and validates it.
[[nodiscard]] Result<ParsedCommandLine> parse_command_line(int argc, const char* const* argv);

}  // namespace godwit
