// virtio-rng request processing (see rng.h).
#include "devices/virtio/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
  if (index != 0 || !queue_) return {};
  if (!queue_->ready()) return {};
  Result<void> outcome{};
  while (true) {
    auto chain = queue_->pop();
    if (!chain) {
      outcome = fail(chain.error());
      break;
    }
    if (!*chain) break;
    auto written = fill_chain(**chain);
    if (!written) {
      outcome = fail(written.error());
      break;
    }
    if (auto r = queue_->add_used((*chain)->head, *written); !r) {
      outcome = fail(r.error());
      break;
    }
    bytes_served_ += *written;
    ++requests_;
  }
  // Chains completed before an error still deserve their interrupt.
  auto notify = queue_->needs_notification();
  if (!notify) return fail(notify.error());
  if (*notify) interrupt_->signal_used_buffer();
  return outcome;
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
