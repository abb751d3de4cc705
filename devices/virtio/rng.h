// virtio-rng (entropy device, id 4): one request queue whose chains carry
// device-writable buffers; the device fills them from getrandom() and hands
// them back. Pure logic: queues and interrupt come from the transport at
// activate(). No config space, no device features, no state beyond the
// queue (its DeviceState holds no bytes).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/virtio/device.h"

namespace godwit::virtio {

/// Virtio device id of the entropy device.
inline constexpr uint32_t kDeviceIdRng = 4;
/// QueueNumMax of the request queue.
inline constexpr uint16_t kRngQueueSize = 256;
/// Bytes filled per chain at most: bounds the work one notification can
/// cause (the driver gets a shorter used length and asks again).
inline constexpr uint32_t kRngMaxBytesPerRequest = 64 * 1024;

/// The virtio entropy device, fed from getrandom(2).
class VirtioRng : public VirtioDevice {
 public:
  /// `name` appears in messages and queue names ("rng0").
  VirtioRng(GuestMemory& memory, std::string name);

  /// 4 (entropy).
  [[nodiscard]] uint32_t device_id() const override { return kDeviceIdRng; }
  /// The instance name.
  [[nodiscard]] std::string_view name() const override { return name_; }
  /// None beyond the transport's.
  [[nodiscard]] uint64_t offered_features() const override { return 0; }
  /// One request queue.
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override { return {kRngQueueSize}; }
  /// No config space: reads 0.
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  /// No config space: ignored.
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  /// Keeps the queue and interrupt.
  [[nodiscard]] Result<void> activate(uint64_t negotiated_features, std::span<Queue> queues,
                                      VirtioInterrupt& interrupt) override;
  /// Forgets the queue and interrupt.
  void reset() override;
  /// Fills every available chain's writable buffers with random bytes.
  [[nodiscard]] Result<void> process_queue(uint16_t index) override;
  /// Stateless: an empty DeviceState.
  [[nodiscard]] Result<DeviceState> state() const override;
  /// Accepts an empty DeviceState of id 4.
  [[nodiscard]] Result<void> restore(const DeviceState& state) override;

  /// Random bytes handed to the driver since construction.
  [[nodiscard]] uint64_t bytes_served() const { return bytes_served_; }
  /// "requests" (chains completed) and "bytes" (random bytes served).
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> counters() const override {
    return {{"requests", requests_}, {"bytes", bytes_served_}};
  }

 private:
  /// Fills up to kRngMaxBytesPerRequest bytes of `chain`; returns the length written.
  [[nodiscard]] Result<uint32_t> fill_chain(const DescriptorChain& chain);

  GuestMemory& memory_;
  std::string name_;
  Queue* queue_ = nullptr;
  VirtioInterrupt* interrupt_ = nullptr;
  uint64_t bytes_served_ = 0;
  uint64_t requests_ = 0;
};

}  // namespace godwit::virtio
