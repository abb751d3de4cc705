// Testdev registers. Accesses are meant to be 32-bit; narrower or unaligned
// reads return the matching bytes of the little-endian register, and writes
// use the bytes given (missing high bytes read as 0).
#include "devices/testdev.h"

#include <cstdio>

#include "base/log.h"

namespace godwit {

Testdev::Testdev(TestdevConfig config, std::shared_ptr<SerialSink> sink,
                 std::function<void(int)> on_exit)
    : config_(config), sink_(std::move(sink)), on_exit_(std::move(on_exit)) {}

uint32_t Testdev::register_value(uint64_t reg) const {
  switch (reg) {
    case kVcpuCountOffset:
      return config_.vcpu_count;
    case kRamMibOffset:
      return config_.ram_mib;
    case kMagicOffset:
      return kMagic;
    default:
      return 0;
  }
}

void Testdev::read(uint64_t offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t at = offset + i;
    data[i] = static_cast<uint8_t>(register_value(at & ~uint64_t{3}) >> (8 * (at & 3)));
  }
}

void Testdev::write(uint64_t offset, std::span<const uint8_t> data) {
  uint32_t value = 0;
  for (size_t i = 0; i < data.size() && i < 4; ++i) value |= uint32_t{data[i]} << (8 * i);
  if (offset == kConsoleOffset && !data.empty()) {
    uint8_t byte = static_cast<uint8_t>(value);
    if (sink_) sink_->write(std::span(&byte, 1));
  } else if (offset == kExitOffset && !data.empty()) {
    if (on_exit_) on_exit_(static_cast<int>(value & 0xff));
  } else if (log::level() <= log::Level::debug) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "testdev: ignored %zu-byte write of 0x%x at offset 0x%llx",
                  data.size(), value, static_cast<unsigned long long>(offset));
    log::debug(msg);
  }
}

}  // namespace godwit
