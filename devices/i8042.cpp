// i8042: status and data reads return 0 (output buffer empty, nothing to
// read); command 0xFE on the command port triggers the reset callback.
#include "devices/i8042.h"

#include <algorithm>

namespace godwit {

I8042::I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}

void I8042::read(uint64_t, std::span<uint8_t> data) { std::ranges::fill(data, uint8_t{0}); }

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kCommandOffset && !data.empty() && data[0] == kResetCommand && on_reset_)
    on_reset_();
}

}  // namespace godwit
