// virtio-rng request processing (see rng.h).
#include "devices/virtio/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "devices/virtio/serve_queue.h"

namespace godwit::virtio {

VirtioRng::VirtioRng(GuestMemory& memory, std::string name)
    : memory_(memory), name_(std::move(name)) {}

void VirtioRng::read_config(uint64_t /*offset*/, std::span<uint8_t> data) const {
  std::memset(data.data(), 0, data.size());
}

void VirtioRng::write_config(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}

Result<void> VirtioRng::activate(uint64_t /*negotiated_features*/, std::span<Queue> queues,
                                 VirtioInterrupt& interrupt) {
  if (queues.size() != 1) {
    return fail(name_ + ": activate with " + std::to_string(queues.size()) + " queues, want 1");
  }
  queue_ = &queues[0];
  interrupt_ = &interrupt;
  return {};
}

void VirtioRng::reset() {
  queue_ = nullptr;
  interrupt_ = nullptr;
}

Result<uint32_t> VirtioRng::fill_chain(const DescriptorChain& chain) {
  ChainWriter out(memory_, chain);
  while (out.written() < kRngMaxBytesPerRequest) {
    auto span = TRY(out.next_span(kRngMaxBytesPerRequest - out.written()));
    if (span.empty()) break;
    ssize_t got = getrandom(span.data(), span.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return fail_errno(name_ + ": getrandom " + std::to_string(span.size()) + " bytes");
    }
    TRY_VOID(out.commit(static_cast<uint64_t>(got)));  // marks the bytes dirty
  }
  return out.written();
}

Result<void> VirtioRng::process_queue(uint16_t index) {
  if (index != 0 || !queue_ || !queue_->ready()) return {};
  return serve_available_chains(*queue_, *interrupt_, [this](const DescriptorChain& chain) {
    auto written = fill_chain(chain);
    if (written) {
      bytes_served_ += *written;
      ++requests_;
    }
    return written;
  });
}

Result<DeviceState> VirtioRng::state() const { return DeviceState{kDeviceIdRng, {}}; }

Result<void> VirtioRng::restore(const DeviceState& state) {
  if (state.device_id != kDeviceIdRng || !state.data.empty()) {
    return fail(name_ + ": restore of device id " + std::to_string(state.device_id) + " with " +
                std::to_string(state.data.size()) + " bytes; want id 4 with none");
  }
  return {};
}

}  // namespace godwit::virtio
