// What tests need to run the selfcheck guest with its virtio devices
// (docs/guests.md, "virtio devices"): a raw disk the guest writes its
// pattern into, the check of that pattern from the host side, and a network
// namespace owned by the test with the tap the guest's ARP request goes to.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "integration/godwit_process.h"
#include "unit/netns_util.h"

namespace godwit::test {

inline constexpr size_t kDiskBytes = 1 << 20;
inline constexpr uint8_t kDiskFill = 0xEE;
/// The guest writes sectors [8, 24).
inline constexpr size_t kPatternBegin = 8 * 512;
inline constexpr size_t kPatternEnd = 24 * 512;

/// The selfcheck guest's block pattern: byte at disk offset o.
inline uint8_t pattern_byte(size_t o) { return static_cast<uint8_t>(o * 31 + (o >> 9) * 7 + 0xA5); }

/// A 1 MiB raw disk filled with kDiskFill.
inline std::string make_disk(const TempDir& dir, const std::string& name) {
  std::string path = dir.file(name);
  std::ofstream(path, std::ios::binary) << std::string(kDiskBytes, static_cast<char>(kDiskFill));
  return path;
}

/// "" when the disk holds the guest's pattern in sectors [8, 24) (only with
/// `expect_pattern`) and the fill everywhere else; else the first mismatch.
inline std::string check_disk(const std::string& path, bool expect_pattern = true) {
  std::string bytes = read_file(path);
  if (bytes.size() != kDiskBytes) return "disk size changed: " + std::to_string(bytes.size());
  for (size_t o = 0; o < bytes.size(); ++o) {
    const bool in_pattern = expect_pattern && o >= kPatternBegin && o < kPatternEnd;
    const uint8_t want = in_pattern ? pattern_byte(o) : kDiskFill;
    if (static_cast<uint8_t>(bytes[o]) != want)
      return "offset " + std::to_string(o) + ": " + std::to_string(static_cast<uint8_t>(bytes[o])) +
             ", want " + std::to_string(want);
  }
  return {};
}

/// A network namespace owned by the test with tap `name` holding
/// 10.0.2.2/24, so the kernel answers the guest's ARP requests. godwit
/// processes started afterwards (fork inherits the namespace) attach to it;
/// the tap is persistent, so a restored VMM reattaches to the same one after
/// the source went away.
class TapNamespace {
 public:
  /// Returns why it cannot be set up (empty on success).
  std::string setup(const std::string& name) {
    if (std::string why = tap_unavailable_reason(); !why.empty()) return why;
    if (std::string why = netns_.enter(); !why.empty()) return why;
    disable_ipv6();
    std::string cmd = "ip link set lo up && ip tuntap add dev " + name +
                      " mode tap && ip addr add 10.0.2.2/24 dev " + name + " && ip link set " +
                      name + " up";
    if (std::system(cmd.c_str()) != 0) return "could not create tap " + name + " with ip(8)";
    return {};
  }

 private:
  ScopedNetns netns_;
};

}  // namespace godwit::test
