// Debug-exit port: the written byte becomes the VMM's exit status.
#include "devices/debug_exit.h"

#include <algorithm>

namespace godwit {

DebugExit::DebugExit(std::function<void(int)> on_exit) : on_exit_(std::move(on_exit)) {}

void DebugExit::read(uint64_t, std::span<uint8_t> data) { std::ranges::fill(data, uint8_t{0}); }

void DebugExit::write(uint64_t, std::span<const uint8_t> data) {
  if (!data.empty() && on_exit_) on_exit_(data[0]);
}

}  // namespace godwit
